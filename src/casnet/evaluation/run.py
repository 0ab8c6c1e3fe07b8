"""One evaluation = one MLflow run (experiment ``casnet-evaluate``) with every suite asked for.

The run is tagged with the model it evaluated (URI, registered name and version) and the lineage
of its data (git commit, DVC hashes); suite metrics are logged with the suite as prefix, figures
as PNG, per-galaxy tables as Parquet, and the summary table as markdown (also returned).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from casnet.core.errors import CasnetInputError
from casnet.core.layout import EXPERIMENTS, project_root
from casnet.core.tracking import data_inputs, ensure_experiment, lineage_tags, tracking_uri
from casnet.data.io.store import CATALOG
from casnet.data.settings import SimulateConfig
from casnet.evaluation.predictor import Predictor
from casnet.evaluation.result import SuiteResult
from casnet.evaluation.settings import EvaluateConfig
from casnet.morphology.settings import MorphologyConfig

__all__ = [
    "DEGENERATE",
    "EXPERIMENT",
    "MISCALIBRATED",
    "SUITES",
    "Evaluation",
    "evaluate",
    "summary_markdown",
]

EXPERIMENT = EXPERIMENTS["evaluate"]
SUITES = ("test", "noise", "redshift", "real")


@dataclass
class Evaluation:
    """What :func:`evaluate` did."""

    run_id: str
    results: dict[str, SuiteResult]
    summary: str


#: what a degenerate network's lines say instead of a number
DEGENERATE = "degenerate (not a result)"
#: what a network's coverage lines say (before the number) when its sigma is miscalibrated
MISCALIBRATED = "sigma miscalibrated"


def summary_markdown(results: Sequence[SuiteResult]) -> str:
    """The networks and the conventional measurement side by side, one row per quantity.

    Every row says its sample size (``n``). A network the test suite finds degenerate
    (:func:`casnet.core.scores.degenerate_reason`: Pearson r < 0.3 with the labels, or a spread
    below 20% of theirs) is reported as such: its lines say "degenerate (not a result)" instead
    of a number and are not set beside the paper's, and a line above the table says why. The
    conventional measurement's numbers stand.

    Likewise a network whose sigma the test suite finds miscalibrated
    (:func:`casnet.core.calibration.miscalibration_reason`: coverage against the labels outside
    issue 18's 0.60-0.76 at 1 sigma or 0.90-0.98 at 2 sigma) has its coverage lines say
    "sigma miscalibrated (1.0000)" rather than a bare number that reads like a result, with a
    line above the table that says why; its other lines stand.
    """
    rows = [r for res in results for r in res.summary]
    if not rows:
        return "no results"
    degenerate = {t: why for res in results for t, why in res.degenerate.items()}
    miscalibrated = {t: why for res in results for t, why in res.miscalibrated.items()
                     if t not in degenerate}  # fmt: skip
    table = pd.DataFrame(rows)
    for col in ("network", "conventional", "target", "n", "sigma"):
        if col not in table:
            table[col] = np.nan
    table = table.astype(object).where(table.notna(), None)  # blanks, not "nan"
    bad = table["target"].isin(list(degenerate)).to_numpy()
    off = (table["target"].isin(list(miscalibrated)) & table["sigma"].eq(True)).to_numpy()

    def cell(v):
        # the column mixes numbers and words: numbers formatted here as tabulate would (.4f)
        return f"{v:.4f}" if isinstance(v, (int, float)) else v

    # object columns built explicitly: a list of numbers and None assigned to a frame becomes
    # float64 with NaN, which tabulate prints as "nan" (and an integer n as 42.0000)
    table["network"] = pd.Series(
        [DEGENERATE if b else f"{MISCALIBRATED} ({cell(v)})" if o and v is not None else cell(v)
         for b, o, v in zip(bad, off, table["network"], strict=True)],
        index=table.index, dtype=object,
    )  # fmt: skip
    if "paper" in table:
        table["paper"] = pd.Series([None if b else (v or None) for b, v in zip(bad, table["paper"],
                                                                               strict=True)],
                                   index=table.index, dtype=object)  # fmt: skip
    table["n"] = pd.Series([None if v is None else str(int(v)) for v in table["n"]],
                           index=table.index, dtype=object)  # fmt: skip
    cols = ["quantity", "n", "network", "conventional"] + (["paper"] if "paper" in table else [])
    table = table[cols].rename(columns={"paper": "paper (net / MFMTK)"})
    # the paper's figures are quoted as written ("0.21", "0.15 / 0.26"), not re-formatted
    quoted = [list(table.columns).index("paper (net / MFMTK)")] if "paper" in cols else False
    text = table.to_markdown(index=False, floatfmt=".4f", missingval="", disable_numparse=quoted)
    notes = [f"**The {t} network is degenerate (not a result)**: {why} on the test set."
             for t, why in sorted(degenerate.items())]  # fmt: skip
    notes += [f"**The {t} network's sigma is miscalibrated**: {why} on the test set."
              for t, why in sorted(miscalibrated.items())]  # fmt: skip
    below = [note for res in results for note in res.notes]
    text = "\n".join([*notes, "", text]) if notes else text
    return "\n\n".join([text, *below])


def evaluate(
    model: str,
    suites: Sequence[str],
    settings: EvaluateConfig,
    *,
    simulate: SimulateConfig,
    morphology: MorphologyConfig,
    test: str | Path = "data/split/test",
    val: str | Path = "data/split/val",
    raw: str | Path = "data/cleaned",
    root: Path | None = None,
    report: str | Path | None = None,
) -> Evaluation:
    """Run ``suites`` against ``model`` and log everything to one MLflow run.

    ``settings`` are the suites' (``params.yaml`` section ``evaluate``); the redshift and real
    suites render with ``simulate`` (PSF, pixel scale, zero point, noise) and the noise, redshift
    and real suites measure with ``morphology``. ``report``: a folder that also gets the summary
    (``summary.md``, with what was evaluated), the tables as CSV (``tables/``) and the figures
    (``figures/``), to commit beside the code that made them.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    unknown = set(suites) - set(SUITES)
    if unknown or not suites:
        raise CasnetInputError(f"suite must be among {', '.join(SUITES)} or all, got {suites}")
    root = root or project_root()
    if report is not None:  # before any work: never over a file, nor inside an input store
        from casnet.data.io.outputs import check_output

        report = check_output(report, kind="folder", inputs=[test, val, raw])
        report.mkdir(parents=True, exist_ok=True)
    needed = {"test": "test" in suites, "val": "noise" in suites, "raw": "noise" in suites}
    stores = {"test": test, "val": val, "raw": raw}
    for name, path in stores.items():
        if needed[name] and not (Path(path) / CATALOG).exists():
            raise CasnetInputError(f"no {name} store at {path}: run `dvc repro` first")
    predictor = Predictor(model, root=root, batch_size=settings.batch_size)
    # lineage of the data these suites read (the redshift and real suites make their own samples)
    data = {k: str(v) for k, v in stores.items() if needed[k]}
    client = MlflowClient(tracking_uri(root))
    exp = ensure_experiment(EXPERIMENT, root)
    tags = {**lineage_tags(data, root), **predictor.describe(), "casnet.suites": ",".join(suites)}
    run_id = client.create_run(exp, run_name=f"evaluate-{'-'.join(suites)}", tags=tags).info.run_id
    if data:
        client.log_inputs(run_id, datasets=data_inputs(data, root))
    results: dict[str, SuiteResult] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            for suite in suites:
                results[suite] = _run_suite(suite, predictor, settings, simulate, morphology,
                                            test, val, raw, out)  # fmt: skip
                _log(client, run_id, results[suite], out, Metric)
            text = summary_markdown(list(results.values()))
            (out / "summary.md").write_text(text + "\n")
            client.log_artifact(run_id, str(out / "summary.md"))
            if report is not None:
                _write_report(Path(report), list(results.values()), text, predictor, run_id)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return Evaluation(run_id=run_id, results=results, summary=text)


def _run_suite(
    suite, predictor, settings, simulate, morphology, test, val, raw, out
) -> SuiteResult:
    if suite == "test":
        from casnet.evaluation.test_set import test_set

        return test_set(predictor, test, out)
    if suite == "noise":
        from casnet.evaluation.noise import noise_suite

        return noise_suite(predictor, val, raw, settings.noise, morphology, out)
    if suite == "real":
        from casnet.evaluation.real import real_suite

        return real_suite(predictor, settings.real, simulate, morphology, out)
    from casnet.evaluation.redshift import redshift_suite

    return redshift_suite(predictor, settings.redshift, simulate, morphology, out)


def _write_report(folder: Path, results: list[SuiteResult], summary: str, predictor: Predictor,
                  run_id: str) -> None:  # fmt: skip
    """The evaluation as files (``--report``): every number in it comes from this run."""
    import shutil
    from datetime import UTC, datetime

    from casnet import __version__
    from casnet.networks import pretrained

    described = predictor.describe()
    shipped = pretrained.shipped_name(predictor.model)
    if shipped is not None:  # not this machine's path to it
        described = {"model": pretrained.describe(pretrained.folder_of(shipped))}
    what = ", ".join(f"{k.removeprefix('casnet.')} {v}" for k, v in described.items())
    head = (f"# casnet evaluate: {', '.join(r.name for r in results)}\n\n"
            f"Written by `casnet evaluate --report` on "
            f"{datetime.now(UTC).strftime('%Y-%m-%d')} with casnet {__version__}; "
            f"{what}; MLflow run {run_id}.\n\n")  # fmt: skip
    parts = [head + summary]
    for result in results:
        for name, table in result.tables.items():
            (folder / "tables").mkdir(exist_ok=True)
            table.to_csv(folder / "tables" / f"{name}.csv", index=False)
            if name.endswith("_by_bin") and len(table) <= 80:  # small enough to read
                parts.append(f"## {name} (tables/{name}.csv)\n\n"
                             + table.round(3).to_markdown(index=False))  # fmt: skip
    (folder / "summary.md").write_text("\n\n".join(parts) + "\n")
    for result in results:
        for png in result.figures:
            (folder / "figures").mkdir(exist_ok=True)
            shutil.copyfile(png, folder / "figures" / Path(png).name)


def _log(client, run_id: str, result: SuiteResult, out: Path, Metric) -> None:
    now = int(time.time() * 1000)
    metrics = [Metric(f"{result.name}_{k}", float(v), now, 0)
               for k, v in result.metrics.items() if v is not None and np.isfinite(v)]  # fmt: skip
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    for png in result.figures:
        client.log_artifact(run_id, str(png), artifact_path=f"figures/{result.name}")
    for name, table in result.tables.items():
        path = out / f"{name}.parquet"
        table.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), artifact_path=f"tables/{result.name}")
