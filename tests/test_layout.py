"""The package layout holds: imports run one way, private names stay home, and the DVC stages
depend on every module they run.

An AST walk over ``src/casnet`` (every import, the lazy ones inside functions too): a module may
import its own layer and the layers below it (:data:`LAYERS`, lowest first), a name starting with
an underscore is never imported or used from another module, and a private module (``_kernels``)
only from inside its own package.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "casnet"

#: lowest first; a module may import from its own layer and those before it
LAYERS = ("core", "morphology", "data", "pipeline", "networks", "evaluation", "bench", "science",
          "params", "api", "cli")  # fmt: skip
#: modules outside the layers (imported by anything, importing nothing of casnet's but these)
BASE = ("casnet", "casnet._version")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _layer(module: str) -> int:
    if module in BASE:
        return -1
    top = module.split(".")[1]
    assert top in LAYERS, f"{module}: package {top!r} is in no layer (add it to LAYERS)"
    return LAYERS.index(top)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (never run)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    return [n for n in ast.walk(tree) if id(n) not in skip]


def _imports(path: Path, module: str) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) of every casnet import in ``path``."""
    out = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.startswith("casnet")]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            if target.split(".")[0] == "casnet":
                out.append((node.lineno, target, [a.name for a in node.names]))
    return out


def _lazy_names(path: Path) -> dict[str, str]:
    """A package's names loaded on first use (its ``_LAZY`` map, PEP 562 ``__getattr__``)."""
    for node in ast.parse(path.read_text()).body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if getattr(target, "id", None) == "_LAZY" and isinstance(node.value, ast.Dict):
            pairs = zip(node.value.keys, node.value.values, strict=True)
            return {k.value: v.value for k, v in pairs}
    return {}


def _resolve(target: str, name: str, modules: dict[str, Path]) -> str:
    """``from target import name``: the module ``name`` is, the module a package loads it from
    lazily, or ``target`` itself."""
    if f"{target}.{name}" in modules:
        return f"{target}.{name}"
    path = modules.get(target)
    if path is not None and path.name == "__init__.py":
        return _lazy_names(path).get(name, target)
    return target


def test_every_package_is_in_a_layer():
    for module in _modules():
        _layer(module)


def test_imports_run_one_way():
    modules = _modules()
    upward = []
    for module, path in modules.items():
        for line, target, names in _imports(path, module):
            for imported in [_resolve(target, n, modules) for n in names] or [target]:
                if _layer(imported) > _layer(module):
                    upward.append(f"{module}:{line} imports {imported}")
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


def test_no_private_name_crosses_a_module():
    modules = _modules()
    crossing = []
    for module, path in modules.items():
        bound = {}  # local name -> casnet module it is bound to
        for line, target, names in _imports(path, module):
            parts = target.split(".")
            private = [p for p in parts[1:] if p.startswith("_") and p != "__init__"]
            # a private module only from inside its own package
            if private:
                home = ".".join(parts[: parts.index(private[0])])
                if not module.startswith(home + ".") and module != home:
                    crossing.append(f"{module}:{line} imports private module {target}")
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    crossing.append(f"{module}:{line} imports {target}.{name}")
                if f"{target}.{name}" in modules:
                    bound[name] = f"{target}.{name}"
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in bound and node.attr.startswith("_")
                    and not node.attr.startswith("__")):  # fmt: skip
                crossing.append(f"{module}:{node.lineno} uses {bound[node.value.id]}.{node.attr}")
    assert not crossing, "private names used across modules:\n" + "\n".join(crossing)


def _closure(start: str, modules: dict[str, Path]) -> set[str]:
    """Every casnet module ``start`` imports, directly or not (lazy imports included), with the
    packages' ``__init__`` modules Python runs on the way."""
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module in seen or module not in modules:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        for _, target, names in _imports(modules[module], module):
            todo += [_resolve(target, n, modules) for n in names] or [target]
    return seen


#: what each stage's command runs (``casnet data <stage>``): the CLI shell itself is not a
#: dependency (it parses options), the pipeline module and all it imports are
STAGE_ENTRY = {
    "source": ("casnet.pipeline.simulate", "casnet.pipeline.ingest"),
    "clean": ("casnet.pipeline.clean",),
    "measure": ("casnet.pipeline.measure",),
    "select": ("casnet.pipeline.select",),
    "split": ("casnet.pipeline.split",),
    "augment": ("casnet.pipeline.augment",),
}
#: modules in every closure that cannot change a stage's output: the package docstrings, the
#: version, the error types, progress bars, the output locks and the Dask executor (where a stage
#: runs does not change its outputs, dvc.yaml's header)
NO_OUTPUT = {"casnet", "casnet._version", "casnet.core", "casnet.core.errors",
             "casnet.core.progress", "casnet.core.parallel", "casnet.core.locking",
             "casnet.pipeline", "casnet.pipeline.settings"}  # fmt: skip


def _docstring_only(path: Path) -> bool:
    """A module that holds nothing but its docstring (a package's description)."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


@pytest.mark.parametrize("stage", sorted(STAGE_ENTRY))
def test_dvc_stage_deps_cover_the_code_it_runs(stage):
    """A change to any module a stage runs must rerun it: every module of the stage's import
    closure lies under one of its ``deps``."""
    modules = _modules()
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["deps"]
    dep_paths = [ROOT / d for d in deps]
    closure = set().union(*(_closure(e, modules) for e in STAGE_ENTRY[stage])) - NO_OUTPUT
    closure = {m for m in closure if not _docstring_only(modules[m])}
    missing = sorted(
        m for m in closure
        if not any(modules[m] == d or d in modules[m].parents for d in dep_paths)
    )  # fmt: skip
    assert not missing, f"dvc.yaml stage {stage!r} misses: " + ", ".join(
        str(modules[m].relative_to(ROOT)) for m in missing
    )
    for d in deps:  # and no stale path
        assert (ROOT / d).exists() or not d.startswith("src/"), f"{stage}: {d} does not exist"


def test_the_closure_sees_lazy_imports():
    """The walk is not fooled by an import inside a function: the measure stage runs the
    measurement, which it imports lazily or not."""
    modules = _modules()
    assert "casnet.morphology.measurement" in _closure("casnet.pipeline.measure", modules)
    assert importlib.util.find_spec("casnet.pipeline.measure") is not None


def test_the_project_root_is_never_the_checkout_the_package_came_from(tmp_path, monkeypatch):
    """Issue 28: with an editable install the root fell back to the source checkout, so every
    folder on the machine used the checkout's MLflow store (and its demo champion)."""
    from casnet.core.layout import project_root

    monkeypatch.delenv("CASNET_ROOT", raising=False)
    assert (ROOT / "params.yaml").exists()  # this checkout is a project...
    assert project_root(tmp_path) == tmp_path.resolve()  # ...and no fallback for other folders
    (tmp_path / "sub").mkdir()
    for marker in ("params.yaml", "dvc.yaml"):
        (tmp_path / marker).write_text("")
    assert project_root(tmp_path / "sub") == tmp_path.resolve()
