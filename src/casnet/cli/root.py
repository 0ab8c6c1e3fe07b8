"""The ``casnet`` application: the command groups put together, and the console script.

Every command loads ``params.yaml`` once (``--params`` to choose another file), passes the typed
sections down to the documented Python API it is a shell over, and ends a
:class:`~casnet.core.errors.CasnetError` with a one-line message and an exit status
(:mod:`casnet.core.errors`): 0 success, 1 the work failed, 2 a wrong command line, 3 an input or
the configuration cannot be used, 4 the MLflow tracking store is missing or damaged.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from casnet.cli import bench, data, evaluate, measure, networks, science
from casnet.cli.common import ParamsOption
from casnet.core.errors import EXIT_FAILURE, CasnetError, exit_status
from casnet.params import load_params

__all__ = ["EXTRA_OF", "app", "main"]

#: the optional dependency group (pyproject's extras) of each package casnet's core does not
#: install (issue 31: ``pip install casnet`` measures; training, predicting, the pipeline and
#: the simulator need more)
EXTRA_OF = {
    "tensorflow": "networks", "keras": "networks", "keras_tuner": "networks",
    "tensorboard": "networks", "mlflow": "networks", "sklearn": "networks",
    "dvc": "pipeline", "pyinstrument": "pipeline", "galsim": "sim",
}  # fmt: skip

app = typer.Typer(
    name="casnet",
    help="Concentration and asymmetry of galaxies, conventionally and with CNNs "
    "(Tohill et al. 2021).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from casnet import __version__

        typer.echo(f"casnet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print casnet's version and exit."
        ),
    ] = None,
) -> None:
    """Concentration and asymmetry of galaxies, conventionally and with CNNs (Tohill et al.
    2021)."""


app.add_typer(measure.commands)
app.add_typer(networks.commands)
app.add_typer(evaluate.commands)
app.add_typer(data.commands, name="data")
app.add_typer(bench.commands, name="benchmark")
app.add_typer(science.commands)


@app.command("links")
def links(
    url: Annotated[str, typer.Option(help="Where the MLflow UI runs (make ui).")] = (
        "http://127.0.0.1:5000"
    ),
) -> None:
    """Print direct links to the runs tables of the search, training, registry, evaluation and
    benchmark experiments in the MLflow UI (never creates a store: a missing or damaged one
    exits with status 4)."""
    from casnet.core.tracking import experiment_links

    found = experiment_links(url)
    if not found:
        typer.echo("no casnet experiment in the store yet")
    for name, link in found:
        typer.echo(f"{name:18s} {link}")


@app.command("params")
def show_params(params: ParamsOption = None) -> None:
    """Print the validated parameters (defaults filled in) as YAML."""
    import yaml

    typer.echo(yaml.safe_dump(load_params(params).model_dump(mode="json"), sort_keys=False))


def main() -> None:
    """Entry point of the ``casnet`` console script."""
    try:
        app()
    except CasnetError as exc:
        typer.echo(f"casnet: error: {exc}", err=True)
        sys.exit(exit_status(exc))
    except ImportError as exc:
        extra = EXTRA_OF.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        typer.echo(f"casnet: error: this command needs casnet's {extra!r} extra (no module "
                   f"{exc.name!r}): pip install 'casnet[{extra}]'", err=True)  # fmt: skip
        sys.exit(EXIT_FAILURE)
