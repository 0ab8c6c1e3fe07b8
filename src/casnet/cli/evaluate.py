"""``casnet evaluate``: the test, noise and redshift suites (Sec. 4) and the real-morphology suite
(issue 29) in one MLflow run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casnet.cli.common import (
    ParamsOption,
    fail,
)
from casnet.core.config import override_from_strings
from casnet.core.errors import EXIT_USAGE
from casnet.core.layout import CLEANED, TEST, VAL
from casnet.params import load_params

commands = typer.Typer()


@commands.command()
def evaluate(
    model: Annotated[
        str,
        typer.Option(
            help="models:/NAME@ALIAS, models:/NAME/VERSION, a model folder, 'pretrained' or "
            "'pretrained-truth' (the packaged models), or http://HOST:PORT of mlflow models "
            "serve."
        ),
    ] = "models:/casnet@champion",
    suite: Annotated[
        list[str] | None,
        typer.Option(
            help="test | noise | redshift | real | all (repeatable). real: real COSMOS HST "
            "galaxies rendered as F160W stamps, network and conventional against the "
            "conventional measurement of the noise-free stamp (issue 29)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override evaluate params, KEY=VALUE (YAML), e.g. "
            "'redshift.n_galaxies=20;noise.max_galaxies=30;real.views=2'.",
        ),
    ] = None,
    test: Annotated[Path, typer.Option(help="Test store.")] = Path(TEST),
    val: Annotated[Path, typer.Option(help="Validation store (noise suite).")] = Path(VAL),
    raw: Annotated[Path, typer.Option(help="Raw stamps of the val galaxies (noise suite).")] = Path(
        CLEANED
    ),
    report: Annotated[
        Path | None,
        typer.Option(
            help="Also write the summary, the tables (CSV) and the figures into this folder "
            "(e.g. reports/real, to commit)."
        ),
    ] = None,
    params: ParamsOption = None,
) -> None:
    """Test-set, noise and redshift suites (Sec. 4) and the real-morphology suite (issue 29)
    against a registered, local, packaged or served model; one MLflow run (experiment
    casnet-evaluate) with metrics, figures and tables; prints a summary."""
    from casnet.evaluation.run import SUITES
    from casnet.evaluation.run import evaluate as run_evaluation
    from casnet.networks import pretrained

    names = [n.strip() for entry in (suite or ["all"]) for n in entry.split(",") if n.strip()]
    if "all" in names:
        names = list(SUITES)
    bad = [n for n in names if n not in SUITES]
    if bad:
        raise fail(
            f"--suite must be test, noise, redshift, real or all, got {', '.join(bad)}", EXIT_USAGE
        )
    if model in pretrained.NAMES:
        model = str(pretrained.model_path(pretrained.folder_of(model)))  # the packaged folder
    p = load_params(params)
    if set_:
        evaluate = override_from_strings(p.evaluate, set_, source="evaluate (--set)")
        p = p.model_copy(update={"evaluate": evaluate})
    result = run_evaluation(model, names, p.evaluate, simulate=p.simulate, morphology=p.morphology,
                            test=test, val=val, raw=raw, report=report)  # fmt: skip
    typer.echo(result.summary)
    typer.echo(f"evaluation run {result.run_id} (experiment casnet-evaluate)")
