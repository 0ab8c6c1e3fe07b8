"""``casnet science``: the science run (issue 17), resumable, with its committed report."""

from __future__ import annotations

from typing import Annotated

import typer

from casnet.cli.common import ParamsOption
from casnet.core.layout import project_root
from casnet.params import load_params

commands = typer.Typer()


@commands.command()
def science(
    until: Annotated[
        str | None,
        typer.Option(help="Stop after this step (data, tune-<target>, train-<target>, ...)."),
    ] = None,
    report: Annotated[
        bool, typer.Option(help="Write the report (science.report) when every step is done.")
    ] = True,
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only",
            help="Only (re)write the report and the pretrained default of a finished run.",
        ),
    ] = False,
    sigma_study: Annotated[
        bool,
        typer.Option(
            "--sigma-study",
            help="After a finished run: train its truth networks again per seed with the "
            "sigma detached from the trunk and compare (science.report/sigma_gradient.md).",
        ),
    ] = False,
    params: ParamsOption = None,
) -> None:
    """Run the science run: params.yaml with science.set applied, in its own folder
    (science.root: its own DVC project and MLflow store): dvc repro, a Bayesian search per
    network, training (on the labels, and on the truth), registry, the test, noise, redshift and
    real-galaxy suites, and the report (science.report). Killed at any point, the same command
    continues where it stopped. Long: run it in the background, e.g.
    nohup make science > science.log &.
    """
    from casnet.science.run import run_science

    p = load_params(params)
    project = project_root()
    if sigma_study:
        from casnet.science.sigma_study import run_sigma_study

        run_sigma_study(p, project)
        return
    if report_only:
        import json

        from casnet.science.run import STEPS_FILE, prepare, publish

        root = prepare(p, project)
        done = json.loads((root / STEPS_FILE).read_text()) if (root / STEPS_FILE).exists() else {}
        if "evaluate" not in done:
            from casnet.cli.common import fail

            raise fail(f"no finished evaluation in {root / STEPS_FILE}: run casnet science first")
        publish(p, project, root, done)
        return
    run_science(p, project, until=until, report=report)
