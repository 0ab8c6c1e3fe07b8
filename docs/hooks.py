"""MkDocs hooks: the reference pages generated from the code, and the committed reports.

- ``reference/cli.md``: every ``casnet`` command, its usage, help and options, from the typer
  application itself;
- ``reference/parameters.md``: every ``params.yaml`` key with its type, default and the settings'
  field description;
- ``reference/columns.md`` and ``reference/flags.md``: the catalogue columns of ``casnet
  measure`` and every flag family, bit by bit, with the reasons written beside them in
  :mod:`casnet.core.flags`;
- the generated reports (``reports/``, ``benchmarks/``: Markdown, figures, tables) are added to
  the site as they are committed, so the guides link to them instead of copying their numbers.

Nothing here is hand-written reference: a new option, key, column or flag appears in the docs
by itself.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
#: the committed outputs of commands, published beside the docs
REPORTS = ("reports", "benchmarks")
_SUFFIXES = {".md", ".png", ".csv"}


def on_files(files, config):
    for folder in REPORTS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in _SUFFIXES:
                uri = path.relative_to(ROOT).as_posix()
                if files.get_file_from_path(uri) is None:
                    files.append(File.generated(config, uri, abs_src_path=str(path)))
    for name, text in _reference().items():
        files.append(File.generated(config, f"reference/{name}.md", content=text))
    return files


def _reference() -> dict[str, str]:
    return {"cli": cli_page(), "parameters": parameters_page(), "columns": columns_page(),
            "flags": flags_page()}  # fmt: skip


# --------------------------------------------------------------------------------- commands


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def cli_page() -> str:
    import typer

    from casnet.cli import app

    root = typer.main.get_command(app)
    lines = ["# Command line", "",
             "Generated from the `casnet` application (`casnet COMMAND --help` prints the same). "
             "Exit statuses: 0 success, 1 the work failed, 2 a wrong command line, 3 an input "
             "or the configuration cannot be used, 4 the MLflow store is missing or damaged.",
             ""]  # fmt: skip

    # typer's commands (its own click): read through their methods, not isinstance
    def visit(cmd: Any, path: list[str], parent: Any) -> None:
        ctx = cmd.context_class(cmd, info_name=path[-1], parent=parent)
        if len(path) > 1:
            lines.extend([f"## `{' '.join(path)}`", "", "```text",
                          cmd.get_usage(ctx).strip(), "```", ""])  # fmt: skip
            if cmd.help:
                lines.extend([inspect.cleandoc(cmd.help), ""])
            rows = []
            for param in cmd.get_params(ctx):
                if getattr(param, "hidden", False) or param.name == "help":
                    continue
                names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
                kind = param.param_type_name
                help_text = getattr(param, "help", None) or ""
                default = param.default
                shown = "" if default in (None, False, ()) or callable(default) else default
                rows.append(f"| {names} | {kind} | {_cell(help_text)} | {_cell(shown)} |")
            if rows:
                lines.extend(["| name | kind | what | default |", "|---|---|---|---|", *rows, ""])
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None and not getattr(sub, "hidden", False):
                    visit(sub, [*path, name], ctx)

    visit(root, ["casnet"], None)
    return "\n".join(lines)


# ------------------------------------------------------------------------------- parameters


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("casnet.", "")


def parameters_page() -> str:
    from pydantic import BaseModel

    from casnet.params import Params

    lines = ["# Parameters (`params.yaml`)", "",
             "Every key, generated from the typed settings (`casnet params` prints the values in "
             "effect). A section is a table; its keys are given with their type, default and "
             "meaning.", ""]  # fmt: skip

    def section(model: type[BaseModel], prefix: str, level: int) -> None:
        doc = inspect.getdoc(model) or ""
        rows, subs = [], []
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                subs.append((name, ann))
                continue
            default = field.default if field.default is not None else "null"
            rows.append(f"| `{name}` | {_cell(_type_name(ann))} | {_cell(default)} | "
                        f"{_cell(field.description or '')} |")  # fmt: skip
        if prefix:
            lines.extend([f"{'#' * level} `{prefix}`", ""])
            if doc:
                lines.extend([doc.splitlines()[0], ""])
        if rows:
            lines.extend(["| key | type | default | meaning |", "|---|---|---|---|", *rows, ""])
        for name, sub in subs:
            section(sub, f"{prefix}.{name}" if prefix else name, min(level + 1, 4) if prefix
                    else 2)  # fmt: skip

    section(Params, "", 2)
    return "\n".join(lines)


# -------------------------------------------------------------------------- columns, flags


def _comments(source: str, names: list[str]) -> dict[str, str]:
    """The ``#:`` comments beside (or above) each ``NAME = ...`` or ``NAME: type`` of
    ``source``."""
    out: dict[str, str] = {}
    above: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            above.append(stripped[2:].strip())
            continue
        # NAME = value  #: text, or a dataclass field NAME: type  #: text
        match = re.match(r"(\w+)\s*(?::\s*[^=#]+)?(?:=\s*[^#]*)?(?:#:\s*(.*))?$", stripped)
        if match and match.group(1) in names:
            text = match.group(2) or " ".join(above)
            out.setdefault(match.group(1), text)
        above = []
    return out


def columns_page() -> str:
    from casnet.morphology import measurement
    from casnet.morphology.measurement import COLUMNS

    notes = _comments(inspect.getsource(measurement.Measurement), list(COLUMNS))
    lines = ["# Catalogue columns (`casnet measure`, `casnet.measure`)", "",
             "In order, generated from `casnet.morphology.Measurement`; radii are semi-major axes "
             "in pixels, angles in radians counter-clockwise from +x, positions in pixels with "
             "the origin at the centre of pixel [0, 0].", "",
             "| column | note |", "|---|---|"]  # fmt: skip
    lines += [f"| `{c}` | {_cell(notes.get(c, ''))} |" for c in COLUMNS]
    return "\n".join(lines) + "\n"


def flags_page() -> str:
    from casnet.core import flags

    lines = ["# Flags", "", inspect.getdoc(flags).split("\n\n")[0], ""]
    for family in (flags.Flag, flags.CleanFlag, flags.IngestFlag, flags.PredictFlag):
        members = [m for m in family if m.value]
        notes = _comments(inspect.getsource(family), [m.name for m in members])
        lines.extend([f"## `{family.__name__}`", "", inspect.getdoc(family) or "", "",
                      "| bit | name | meaning |", "|---|---|---|"])  # fmt: skip
        for m in members:
            fatal = " (fatal)" if family is flags.Flag and m in flags.FATAL else ""
            lines.append(f"| {int(m.value)} | `{m.name}`{fatal} | {_cell(notes.get(m.name, ''))} |")
        lines.append("")
    return "\n".join(lines)
