"""Checking a model folder before anything in it runs, and loading casnet's combined model without
running code shipped with it (issue 28).

An MLflow pyfunc model is code: ``mlflow.pyfunc.load_model`` imports the ``loader_module`` its
``MLmodel`` names, puts the folder's ``code`` paths on ``sys.path``, unpickles
``python_model.pkl`` with cloudpickle (which can call any function) or runs a ``python_model``
``.py`` file ("model from code"). So "is this casnet's combined model?" must be answered from the
files, before MLflow loads anything; once loaded it is too late.

:func:`check_model` reads ``MLmodel`` (and each network's) with a YAML loader that builds plain
data only, and disassembles ``python_model.pkl`` without running it (:mod:`pickletools`): the
folder must be laid out as :func:`casnet.networks.registry.register_combined` writes it.
:func:`load_combined` then builds :class:`~casnet.networks.registry.CasnetModel` itself from the
checked files: each network's ``.keras`` file loaded by Keras in safe mode (which refuses the
Python code of ``Lambda`` layers), the galclean settings from the model's ``config``;
``python_model.pkl`` is never unpickled. ``mlflow models serve`` does unpickle it (that is how
MLflow serves a pyfunc model): :func:`casnet.networks.serve.scoring_server` checks the folder
first, and the check allows only the pickle casnet writes (one ``CasnetModel()``, no function
calls).

What this cannot do: tell a network trained by someone else from one casnet trained (the weights
are data, and a network can be wrong without being malicious), or protect against flaws in Keras's
or h5py's own file readers. A model from someone you do not trust should not be loaded anywhere.
"""

from __future__ import annotations

import pickletools
from pathlib import Path, PurePosixPath
from typing import Any

from casnet.core.config import parse_yaml
from casnet.core.errors import CasnetConfigError, CasnetInputError
from casnet.core.layout import COMBINED_MODEL, TARGETS

__all__ = [
    "LEGACY_TARGETS",
    "LOADER_MODULE",
    "PYTHON_MODEL",
    "check_model",
    "load_combined",
    "model_targets",
]

#: the pyfunc loader of a ``PythonModel`` saved by MLflow: the combined model's
LOADER_MODULE = "mlflow.pyfunc.model"
#: where MLflow writes the pickled ``PythonModel`` (casnet writes no other name)
PYTHON_MODEL = "python_model.pkl"
#: the ``python_function`` keys MLflow 3.17 writes for ``mlflow.pyfunc.log_model(python_model=
#: CasnetModel(), artifacts=..., model_config=...)``; any other (``model_code_path``, ``data``,
#: ``predict_fn``, ``python_model_compression``, ...) changes what a load runs
_PYFUNC_KEYS = frozenset({"loader_module", "python_model", "artifacts", "cloudpickle_version",
                          "code", "config", "env", "python_version", "streamable"})  # fmt: skip
#: a network inside the combined model: MLflow's Keras flavour (and its pyfunc view)
_NETWORK_FLAVORS = frozenset({"keras", "python_function"})
#: MLmodel files are a few kB; a larger one is not what casnet or MLflow writes
_MAX_MLMODEL_BYTES = 1 << 20
#: casnet's pickle is ~200 bytes (an empty ``CasnetModel``: the networks are artifacts)
_MAX_PICKLE_BYTES = 1 << 16
#: the only things casnet's pickle refers to: the model class and what MLflow 3 records of its
#: ``predict``'s type hints (``-> pd.DataFrame``). Importing these runs no code of the folder's
_PICKLE_GLOBALS = frozenset({
    ("casnet.networks.registry", "CasnetModel"),
    ("mlflow.models.signature", "_TypeHints"),
    ("pandas", "DataFrame"),
    ("pandas.core.frame", "DataFrame"),
})  # fmt: skip
#: pickle operations that build plain data (no call, no import, no persistent id)
_PUSH_VALUE = frozenset({"BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT", "NONE", "NEWTRUE",
                         "NEWFALSE", "EMPTY_TUPLE", "EMPTY_DICT", "EMPTY_LIST",
                         "SHORT_BINBYTES", "BINBYTES"})  # fmt: skip
_PUSH_TEXT = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"})
_TO_MARK = frozenset({"TUPLE", "SETITEMS", "APPENDS"})
_MARK = object()


class _Global:
    """A class the pickle refers to (allowed by :data:`_PICKLE_GLOBALS`)."""


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def _refuse(name: str, why: str) -> CasnetInputError:
    return CasnetInputError(
        f"{name} is not casnet's combined model as casnet writes it: {why}; nothing in it was "
        "loaded (a model folder can run code when loaded: use only models you trust)"
    )


def _read_mlmodel(file: Path, name: str) -> dict:
    """``MLmodel`` as plain data (no Python object is built from YAML tags)."""
    if not file.is_file():
        raise _refuse(name, f"no {file.name} file")
    if file.stat().st_size > _MAX_MLMODEL_BYTES:
        raise _refuse(name, f"{file.name} is over {_MAX_MLMODEL_BYTES} bytes")
    try:
        # plain data only, no aliases (a few kB of nested aliases expand to gigabytes when
        # walked; MLflow never writes them): the configuration's own reader
        spec = parse_yaml(file.read_bytes(), source=file.name)
    except CasnetConfigError as exc:
        raise _refuse(name, str(exc).splitlines()[0]) from None
    if not isinstance(spec, dict) or not isinstance(spec.get("flavors"), dict):
        raise _refuse(name, f"{file.name} has no flavors")
    return spec


def _inside(root: Path, rel: Any, name: str, what: str) -> Path:
    """``root / rel`` for a relative path that stays inside ``root`` (links resolved)."""
    parts = PurePosixPath(rel).parts if isinstance(rel, str) else ()
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise _refuse(name, f"{what} path {_short(rel)} is not a relative path inside the model")
    path = root / rel
    if not path.resolve().is_relative_to(root.resolve()):
        raise _refuse(name, f"{what} {rel} leads outside the model folder")
    return path


def _not_combined(name: str, spec: dict) -> CasnetInputError:
    """The error for a folder whose MLmodel is not a casnet pyfunc model."""
    flavors = spec["flavors"]
    loader = (flavors.get("python_function") or {}).get("loader_module")
    if "keras" in flavors:
        # one network (models:/casnet-concentration): the networks take crops, not stamps
        return CasnetInputError(
            f"{name} is a single network ({loader or 'keras'}), not the combined model that "
            f"takes stamps: give models:/{COMBINED_MODEL}@champion (or "
            f"models:/{COMBINED_MODEL}/VERSION)"
        )
    if loader is None:
        return _refuse(name, "MLmodel has no python_function flavour")
    return _refuse(name, f"MLmodel names the loader module {_short(loader)} (casnet's combined "
                         f"model is loaded by {LOADER_MODULE})")  # fmt: skip


def _check_pickle(file: Path, name: str) -> None:
    """Refuse a ``python_model.pkl`` that would do more, unpickled, than rebuild an empty
    ``CasnetModel``: read op by op without running it, it may refer only to
    :data:`_PICKLE_GLOBALS` and create objects only with ``NEWOBJ`` (``cls.__new__``) and
    ``BUILD`` (set their attributes); no ``REDUCE`` (a call of anything), no persistent ids."""
    if not file.is_file() or file.stat().st_size > _MAX_PICKLE_BYTES:
        raise _refuse(name, f"{PYTHON_MODEL} is missing or over {_MAX_PICKLE_BYTES} bytes")
    stack: list[Any] = []
    memo: dict[int, Any] = {}

    def pop() -> Any:
        if not stack or stack[-1] is _MARK:
            raise ValueError("stack underflow")
        return stack.pop()

    def pop_mark() -> None:
        while stack and stack[-1] is not _MARK:
            stack.pop()
        if not stack:
            raise ValueError("no mark")
        stack.pop()

    def allow(module: Any, attr: Any) -> _Global:
        if (module, attr) not in _PICKLE_GLOBALS:
            raise ValueError(f"it refers to {str(module)[:60]}.{str(attr)[:60]}")
        return _Global()

    try:
        for op, arg, _ in pickletools.genops(file.read_bytes()):
            kind = op.name
            if kind in ("PROTO", "FRAME"):
                continue
            if kind == "STOP":
                break
            if kind in _PUSH_TEXT:
                stack.append(str(arg))
            elif kind in _PUSH_VALUE:
                stack.append(None)
            elif kind == "MARK":
                stack.append(_MARK)
            elif kind == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif kind in ("BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif kind in ("BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            elif kind == "STACK_GLOBAL":
                attr, module = pop(), pop()
                stack.append(allow(module, attr))
            elif kind == "GLOBAL":
                stack.append(allow(*str(arg).split(" ", 1)))
            elif kind == "NEWOBJ":
                pop()
                if not isinstance(pop(), _Global):
                    raise ValueError("it creates an object of no allowed class")
                stack.append(None)
            elif kind in ("TUPLE1", "TUPLE2", "TUPLE3"):
                for _ in range(int(kind[-1])):
                    pop()
                stack.append(None)
            elif kind in _TO_MARK:
                pop_mark()
                if kind == "TUPLE":
                    stack.append(None)
            elif kind in ("BUILD", "APPEND"):
                pop()
            elif kind == "SETITEM":
                pop(), pop()
            else:
                raise ValueError(f"it holds the operation {kind}")
        else:
            raise ValueError("it ends early")
    except (ValueError, KeyError, IndexError) as exc:
        raise _refuse(name, f"{PYTHON_MODEL} is not the pickle casnet writes ({exc})") from None


def _network_file(folder: Path, name: str, target: str) -> Path:
    """The ``.keras`` file of one network folder (MLflow's Keras flavour, as casnet logs it)."""
    spec = _read_mlmodel(folder / "MLmodel", f"{name} ({target} network)")
    flavors = spec["flavors"]
    keras_flavor = flavors.get("keras")
    unknown = sorted(set(flavors) - _NETWORK_FLAVORS)
    if not isinstance(keras_flavor, dict) or unknown:
        raise _refuse(name, f"its {target} network is not a Keras model"
                            + (f" (flavours {unknown})" if unknown else ""))  # fmt: skip
    pyfunc = flavors.get("python_function") or {}
    code = pyfunc.get("code") or keras_flavor.get("code")
    if pyfunc.get("loader_module", "mlflow.keras") != "mlflow.keras" or code:
        raise _refuse(name, f"its {target} network names a loader module or code paths")
    if keras_flavor.get("save_exported_model"):
        # a TensorFlow SavedModel graph, not a Keras file Keras can load in safe mode
        raise _refuse(name, f"its {target} network is an exported SavedModel")
    data = _inside(folder, keras_flavor.get("data", "data"), name, f"{target} network data")
    file = data / "model.keras"
    if not file.is_file():
        raise _refuse(name, f"its {target} network has no {file.relative_to(folder)}")
    return file


def _check(path: Path, name: str) -> tuple[dict, dict[str, Path]]:
    """The checks of :func:`check_model`; returns (pyfunc flavour, target -> ``.keras`` file)."""
    path = Path(path)
    if not path.is_dir():
        raise CasnetInputError(f"{name} is not a model folder")
    spec = _read_mlmodel(path / "MLmodel", name)
    flavors = spec["flavors"]
    pyfunc = flavors.get("python_function")
    if not isinstance(pyfunc, dict) or pyfunc.get("loader_module") != LOADER_MODULE:
        raise _not_combined(name, spec)
    if set(flavors) != {"python_function"}:
        raise _refuse(name, f"MLmodel has flavours {sorted(flavors)} beside python_function")
    if "model_code_path" in pyfunc or str(pyfunc.get("python_model", "")).endswith(".py"):
        raise _refuse(name, "it is an MLflow 'model from code' (its python_model is a Python "
                            "file, run when loaded)")  # fmt: skip
    unknown = sorted(set(pyfunc) - _PYFUNC_KEYS)
    if unknown:
        raise _refuse(name, f"MLmodel's python_function has keys casnet never writes: {unknown}")
    if pyfunc.get("code"):
        raise _refuse(name, f"MLmodel names code paths ({_short(pyfunc['code'])}) that a load "
                            "would put on sys.path")  # fmt: skip
    if pyfunc.get("streamable"):
        raise _refuse(name, "MLmodel marks it streamable")
    if pyfunc.get("python_model") != PYTHON_MODEL:
        raise _refuse(name, f"its python_model is {_short(pyfunc.get('python_model'))}, not "
                            f"{PYTHON_MODEL}")  # fmt: skip
    config = pyfunc.get("config")
    if config is not None and not isinstance(config, dict):
        raise _refuse(name, "MLmodel's config is not a mapping")
    artifacts = pyfunc.get("artifacts")
    try:
        targets = model_targets(artifacts, config)
    except ValueError as exc:
        raise _refuse(name, str(exc)) from None
    files = {}
    for target in targets:
        entry = artifacts[target]
        rel = entry.get("path") if isinstance(entry, dict) else None
        folder = _inside(path, rel, name, f"{target} artifact")
        if not folder.is_dir():
            raise _refuse(name, f"its {target} network ({rel}) is missing")
        files[target] = _network_file(folder, name, target)
    _check_pickle(_inside(path, PYTHON_MODEL, name, "python_model"), name)
    return pyfunc, files


#: the quantities of every combined model registered before models recorded their own (issue
#: 32), in their outputs' order
LEGACY_TARGETS = ("concentration", "asymmetry")


def model_targets(artifacts, config: dict | None) -> tuple[str, ...]:
    """The quantities a combined model has networks for, in the order of its outputs (issue
    32: the model's own, not the code's :data:`casnet.core.layout.TARGETS`, so a model made
    before a quantity was added keeps loading).

    A model registered since issue 32 records them in its ``model_config`` (``targets``); one
    registered before holds C and A (:data:`LEGACY_TARGETS`).

    Parameters
    ----------
    artifacts : dict
        The pyfunc flavour's artifacts: quantity name -> its network's folder.
    config : dict or None
        The model's ``model_config``.

    Raises
    ------
    ValueError
        No artifacts, an artifact that is no quantity casnet knows, or recorded targets that
        are not exactly the artifacts.
    """
    if not isinstance(artifacts, dict) or not artifacts:
        raise ValueError("it has no networks (no artifacts): not one network per target")
    unknown = sorted(str(a) for a in artifacts if a not in TARGETS)
    if unknown:
        raise ValueError(f"its artifacts {unknown} are not one network per target casnet "
                         f"knows ({', '.join(TARGETS)})")  # fmt: skip
    recorded = (config or {}).get("targets")
    if recorded is None:  # registered before issue 32: casnet then always wrote C and A
        if set(artifacts) != set(LEGACY_TARGETS):
            raise ValueError(f"its artifacts are {sorted(artifacts)}, not one network per "
                             f"target {list(LEGACY_TARGETS)} (a model without recorded "
                             "targets)")  # fmt: skip
        return LEGACY_TARGETS
    if (not isinstance(recorded, list) or len(set(map(str, recorded))) != len(recorded)
            or set(recorded) != set(artifacts)):  # fmt: skip
        raise ValueError(f"its config's targets {_short(recorded)} are not its networks "
                         f"{sorted(artifacts)}")  # fmt: skip
    return tuple(recorded)


def check_model(path: Path, name: str) -> None:
    """Refuse a model folder that is not casnet's combined model as casnet writes it, before
    anything in it is loaded.

    Reads ``path/MLmodel`` and each network's ``MLmodel`` as plain YAML (no tags, no aliases)
    and disassembles ``python_model.pkl`` without running it. Accepted: the
    ``python_function`` flavour only, with loader module :data:`LOADER_MODULE`, no ``code``
    paths, ``python_model`` :data:`PYTHON_MODEL` (not a Python file: "model from code"), no
    keys MLflow writes for other kinds of model, a pickle that refers to nothing but
    ``CasnetModel`` (and MLflow's record of its type hints) and calls nothing, and artifacts of
    one network per quantity the model has (:func:`model_targets`), each a folder inside
    the model holding an MLflow Keras model (``MLmodel`` with the ``keras`` flavour, no code
    paths, not an exported SavedModel) and its ``.keras`` file.

    Parameters
    ----------
    path : Path
        The local model folder (a download of a ``models:/`` URI, or a folder the user gave).
    name : str
        What the user gave (``models:/casnet@champion``, a folder): every message names it,
        never a temporary download folder.

    Raises
    ------
    CasnetInputError
        Naming ``name`` and what is wrong; a single network (``casnet-concentration``) is told
        apart ("a single network").
    """
    _check(Path(path), name)


def load_combined(path: Path, name: str):
    """Load the combined model at ``path`` without running code shipped in the folder.

    :func:`check_model` first; then :class:`~casnet.networks.registry.CasnetModel` is built
    here from the checked files (``python_model.pkl`` is not unpickled): each network's
    ``.keras`` file loaded by Keras with ``safe_mode=True`` (no ``Lambda`` code) and without its
    optimizer, and the galclean settings from the model's ``config``. The result is the
    :class:`mlflow.pyfunc.PyFuncModel` ``mlflow.pyfunc.load_model`` would give: the same
    ``predict(data, params=None)`` (input conversion and params schema included),
    ``unwrap_python_model()`` and ``metadata``.

    Parameters
    ----------
    path : Path
        The local model folder.
    name : str
        What the user gave, for messages (see :func:`check_model`).

    Raises
    ------
    CasnetInputError
        The folder is not casnet's combined model, a network file is refused by Keras (safe
        mode, or not a Keras file), or the ``config`` is not casnet's galclean settings.
    """
    import keras
    from mlflow.models import Model
    from mlflow.pyfunc import PyFuncModel
    from mlflow.pyfunc.model import PythonModelContext, _PythonModelPyfuncWrapper

    from casnet.data.settings import CleanConfig

    # imported here: registry imports this module (its load() calls load_combined); importing
    # it also registers casnet's custom layers, losses and metrics with Keras
    from casnet.networks.registry import CasnetModel

    path = Path(path)
    pyfunc, files = _check(path, name)
    networks = {}
    for target, file in files.items():
        try:
            networks[target] = keras.saving.load_model(file, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises ValueError, TypeError, OSError, zip errors ...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            # Keras's advice to pass safe_mode=False is not the user's to follow here
            first = first.split(" If you trust")[0][:300]
            raise CasnetInputError(f"{name}: its {target} network does not load ({first})"
                                   ) from None  # fmt: skip
    config = pyfunc.get("config") or {}
    try:
        clean = CleanConfig.model_validate(config["clean"]) if config.get("clean") else None
    except ValueError as exc:
        first = str(exc).splitlines()[0][:300]
        raise CasnetInputError(f"{name}: its config's galclean settings are invalid ({first})"
                               ) from None  # fmt: skip
    python_model = CasnetModel(networks, clean=clean)
    artifacts = {t: str(path / pyfunc["artifacts"][t]["path"]) for t in files}
    context = PythonModelContext(artifacts=artifacts, model_config=config)
    meta = Model.load(str(path / "MLmodel"))
    # MLflow's own wrapper of a PythonModel: predict() converts inputs and validates params as
    # for a model mlflow.pyfunc.load_model returns
    impl = _PythonModelPyfuncWrapper(python_model=python_model, context=context,
                                     signature=meta.signature)  # fmt: skip
    return PyFuncModel(model_meta=meta, model_impl=impl, model_id=meta.model_id)
