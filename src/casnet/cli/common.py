"""What every command group shares: the common options, the error exit, option parsers."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from casnet.core.config import override
from casnet.core.errors import EXIT_FAILURE, EXIT_USAGE, CasnetError
from casnet.core.layout import TARGETS

__all__ = [
    "FromTuneOption",
    "ParamsOption",
    "QuietOption",
    "SchedulerOption",
    "WorkersOption",
    "budget",
    "check_target",
    "dask_settings",
    "fail",
    "parse_hdu",
    "parse_workers",
    "stage",
    "store_settings",
]

ParamsOption = Annotated[
    Path | None,
    typer.Option("--params", help="Parameters file (default: params.yaml at the project root)."),
]
FromTuneOption = Annotated[
    str | None,
    typer.Option(
        help="Architectures from a search: its parent run id, or 'best' (the finished search "
        "with the lowest validation RMSE). Default: params.yaml's model (the paper's Table 1)."
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
SchedulerOption = Annotated[
    str | None,
    typer.Option(help="Dask scheduler address (tcp://host:8786); default: a LocalCluster."),
]
WorkersOption = Annotated[
    int | None, typer.Option(help="LocalCluster workers (default: all cores; 0: no Dask).")
]


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print ``casnet: error: message`` on stderr; raise the returned exit with ``code``
    (:data:`casnet.core.errors.EXIT_USAGE` for a wrong command line)."""
    typer.echo(f"casnet: error: {message}", err=True)
    return typer.Exit(code)


def stage(name: str):
    """Decorate a data-stage command: an input error names the stage that met it."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except CasnetError as exc:
                text = str(exc)
                prefix = f"{name}: "
                raise type(exc)(text if text.startswith(prefix) else prefix + text) from None

        return run

    return wrap


def parse_hdu(value: str | None) -> int | str | None:
    """``--hdu``: an index (``1``) or an EXTNAME (``SCI``)."""
    if value is None:
        return None
    return int(value) if value.lstrip("-").isdigit() else value


def parse_workers(value: str) -> tuple[int, ...]:
    """``--workers 1,2``: worker counts to compare (each >= 0)."""
    try:
        counts = tuple(int(w) for w in value.split(","))
    except ValueError:
        message = f"--workers must be comma-separated integers, got {value!r}"
        raise fail(message, EXIT_USAGE) from None
    if not counts or min(counts) < 0:
        raise fail(f"--workers: worker counts must be >= 0, got {value!r}", EXIT_USAGE)
    return counts


def budget(value: str | None) -> int | str | None:
    """A budget flag: ``params`` (or absent) keeps params.yaml; otherwise the number (validated
    by the config, so ``0`` fails with the params.yaml message)."""
    if value is None or value == "params":
        return None
    try:
        return int(value)
    except ValueError:
        return value  # rejected by the typed config with a message naming the key


def check_target(target: str) -> None:
    """``--target``: one of the networks' quantities."""
    if target not in TARGETS:
        raise fail(f"--target must be one of {', '.join(TARGETS)}, got {target!r}", EXIT_USAGE)


def dask_settings(params, scheduler: str | None, workers: int | None):
    """The ``dask`` section with ``--scheduler`` / ``--workers`` (validated like the file)."""
    return override(params.dask, source="command line", scheduler=scheduler, workers=workers)


def store_settings(params, chunk_size: int | None):
    """The ``store`` section with ``--chunk-size`` (validated: ``0`` names the key)."""
    return override(params.store, source="command line", chunk_size=chunk_size)
