"""Does the simulated training set look like the paper's? (``casnet benchmark simulate``, issue 15)

Simulates N galaxies with the given parameters, runs the data stages the training set comes from
(galclean, measure with the idealised truth, select) in a temporary folder, and reports:

- the survival through selection, per cut (the select stage's own accounting) and per kind;
- the share of undetected galaxies (NO_SOURCE);
- percentiles of the selected labels (the conventional C and A the networks learn) and of the
  idealised truths, and the tails that matter for science: C > 4, A > 0.15, A > 0.3, A < 0;
- each of the issue's targets, met or not (:data:`TARGETS`), printed, never asserted;
- figures: the C-A plane of labels and truths by kind (the paper's Figs. 1-2 analogue) beside the
  magnitude-size plane (selected galaxies highlighted).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from casnet.core.figures import save_figure
from casnet.core.flags import Flag
from casnet.data.settings import CleanConfig, SelectConfig, SimulateConfig, StoreConfig
from casnet.data.simulate import KINDS
from casnet.morphology.settings import MorphologyConfig
from casnet.pipeline import clean, measure, select, simulate
from casnet.pipeline.settings import DaskConfig

__all__ = ["TARGETS", "format_population", "plot_population", "population", "population_report"]

#: the targets for the default parameters (N >= 2,000): (report key, op, value). Issue 15's;
#: its C tail (p95 >= 4.2, 5% above 4) replaced by issue 29's, which follow from the paper's
#: definition (C inside 1.5 R_p through the F160W PSF; shared/design.md sec. 8): p95 in
#: [3.45, 3.75], p99 >= 3.7, 0.3-2% above C = 4 (nucleated disks)
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("survival", ">=", 0.55),
    ("no_source_fraction", "<=", 0.03),
    ("label_c_p05", "<=", 2.3),
    ("label_c_p95", ">=", 3.45),
    ("label_c_p95", "<=", 3.75),
    ("label_c_p99", ">=", 3.7),
    ("label_c_above_4", ">=", 0.003),
    ("label_c_above_4", "<=", 0.02),
    ("label_a_above_0.15", ">=", 0.12),
    ("label_a_above_0.3", ">=", 0.04),
    ("label_a_negative", "<=", 0.15),
    ("min_kind_survival", ">=", 0.40),
)


def population(
    n: int,
    *,
    sim: SimulateConfig | None = None,
    clean_cfg: CleanConfig | None = None,
    morph: MorphologyConfig | None = None,
    select_cfg: SelectConfig | None = None,
    dask: DaskConfig | None = None,
    workdir: str | Path | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run simulate -> clean -> measure -> select on ``n`` galaxies.

    Returns
    -------
    rows, select_metrics
        One row per simulated galaxy: the simulator's catalogue columns, ``selected``, the
        measured ``concentration`` / ``asymmetry`` / ``snr_p`` / ``flag``, the truths
        ``concentration_true`` / ``asymmetry_true``; and the select stage's metrics (its
        removals per cut).
    """
    sim = sim or SimulateConfig()
    dask = dask or DaskConfig()
    store = StoreConfig()
    with tempfile.TemporaryDirectory(dir=workdir, prefix="casnet-population-") as tmp:
        out = Path(tmp)
        raw = simulate.run(sim, n, store, out / "raw", morphology=morph, dask=dask,
                           show_progress=progress)  # fmt: skip
        clean.run(clean_cfg or CleanConfig(), store, out / "raw", out / "clean", dask=dask,
                  show_progress=progress)  # fmt: skip
        measure.run(morph or MorphologyConfig(), out / "clean", out / "measured.parquet",
                    dask=dask, show_progress=progress)  # fmt: skip
        selected, metrics = select.run(select_cfg or SelectConfig(), store, out / "clean",
                                       out / "measured.parquet", out / "selected",
                                       show_progress=progress)  # fmt: skip
        measured = pd.read_parquet(out / "measured.parquet")
        rows = raw.catalog.merge(
            measured[["galaxy_id", "concentration", "asymmetry", "snr_p", "r_petro", "flag",
                      "concentration_true", "asymmetry_true"]],
            on="galaxy_id", how="left",
        )  # fmt: skip
        rows["selected"] = rows.galaxy_id.isin(set(selected.catalog.galaxy_id))
    return rows, metrics


def _share(values: pd.Series, mask: pd.Series) -> float:
    return float(mask.mean()) if len(values) else float("nan")


def population_report(rows: pd.DataFrame, select_metrics: dict[str, Any]) -> dict[str, Any]:
    """Survival, percentiles and tails of :func:`population`'s rows, each target met or not."""
    kept = rows[rows.selected]
    by_kind = {
        k: float(rows.selected[rows.kind == k].mean()) for k in KINDS if (rows.kind == k).any()
    }
    undetected = (rows.flag.fillna(0).astype(int) & int(Flag.NO_SOURCE)) > 0
    report: dict[str, Any] = {
        "n": len(rows),
        "n_selected": len(kept),
        "survival": float(rows.selected.mean()),
        "survival_by_kind": by_kind,
        "min_kind_survival": min(by_kind.values()) if by_kind else float("nan"),
        "removed_by_cut": dict(select_metrics.get("removed", {})),
        "no_source_fraction": float(undetected.mean()),
        "size_redrawn_fraction": float((rows.size_redraws > 0).mean()),
        "stamp_overflows": int((~rows.stamp_fits.astype(bool)).sum()),
    }
    for prefix, c, a in (("label", "concentration", "asymmetry"),
                         ("truth", "concentration_true", "asymmetry_true")):  # fmt: skip
        cc, aa = kept[c].dropna(), kept[a].dropna()
        for q in (5, 50, 95, 99):
            report[f"{prefix}_c_p{q:02d}"] = float(np.percentile(cc, q)) if len(cc) else np.nan
            report[f"{prefix}_a_p{q:02d}"] = float(np.percentile(aa, q)) if len(aa) else np.nan
        report[f"{prefix}_c_above_4"] = _share(cc, cc > 4)
        report[f"{prefix}_a_above_0.15"] = _share(aa, aa > 0.15)
        report[f"{prefix}_a_above_0.3"] = _share(aa, aa > 0.3)
        report[f"{prefix}_a_negative"] = _share(aa, aa < 0)
    report["targets"] = [
        {"quantity": key, "target": f"{op} {value:g}", "value": report[key],
         "met": bool(report[key] >= value if op == ">=" else report[key] <= value)}
        for key, op, value in TARGETS
    ]  # fmt: skip
    return report


def format_population(report: dict[str, Any]) -> str:
    """Markdown: survival per cut and kind, label/truth percentiles, the targets."""
    n = report["n"]
    lines = [
        f"Simulated {n} galaxies; {report['n_selected']} selected "
        f"(survival {report['survival']:.1%}); sizes redrawn to fit the stamp: "
        f"{report['size_redrawn_fraction']:.1%}; stamps that still overflow: "
        f"{report['stamp_overflows']}.",
        "",
        "| removed by | galaxies | share of N |",
        "|---|---|---|",
    ]
    for cut, count in sorted(report["removed_by_cut"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {cut} | {count} | {count / n:.1%} |")
    lines += ["", "| kind | survival |", "|---|---|"]
    lines += [f"| {k} | {v:.1%} |" for k, v in report["survival_by_kind"].items()]
    lines += [
        "",
        f"| selected (N = {report['n_selected']}) | C p5 | C p50 | C p95 | C p99 | C > 4 | A p5 "
        "| A p50 | A p95 | A > 0.15 | A > 0.3 | A < 0 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for prefix, name in (("label", "labels (conventional)"), ("truth", "idealised truth")):
        r = {k[len(prefix) + 1 :]: v for k, v in report.items() if k.startswith(prefix + "_")}
        lines.append(
            f"| {name} | {r['c_p05']:.2f} | {r['c_p50']:.2f} | {r['c_p95']:.2f} "
            f"| {r['c_p99']:.2f} | {r['c_above_4']:.1%} | {r['a_p05']:.3f} | {r['a_p50']:.3f} "
            f"| {r['a_p95']:.3f} "
            f"| {r['a_above_0.15']:.1%} | {r['a_above_0.3']:.1%} | {r['a_negative']:.1%} |"
        )
    lines += ["", "| target (issues 15, 29) | wanted | here | met |", "|---|---|---|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['quantity']} | {t['target']} | {t['value']:.3g} "
                     f"| {'yes' if t['met'] else '**no**'} |")  # fmt: skip
    return "\n".join(lines)


def plot_population(rows: pd.DataFrame, out: str | Path) -> Path:
    """C-A plane of the selected labels and truths by kind, beside the magnitude-size plane."""
    fig = Figure(figsize=(13.0, 4.2))
    axes = fig.subplots(1, 3)
    kept = rows[rows.selected]
    for ax, (c, a, title) in zip(
        axes[:2],
        (("concentration", "asymmetry", "selected labels (conventional)"),
         ("concentration_true", "asymmetry_true", "selected, idealised truth")),
        strict=True,
    ):  # fmt: skip
        for i, kind in enumerate(KINDS):
            sub = kept[kept.kind == kind]
            ax.scatter(sub[c], sub[a], s=5, c=f"C{i}", label=f"{kind} ({len(sub)})", alpha=0.7)
        ax.set_xlabel("C")
        ax.set_ylabel("A")
        ax.set_title(title, fontsize=9)
        ax.axhline(0, c="0.6", lw=0.6)
        ax.legend(fontsize=7, markerscale=2)
    ax = axes[2]
    ax.scatter(rows.mag[~rows.selected], rows.r_half_px[~rows.selected], s=4, c="0.7",
               label="removed")  # fmt: skip
    ax.scatter(kept.mag, kept.r_half_px, s=5, c="C0", label="selected")
    ax.set_xlabel("H (AB mag)")
    ax.set_ylabel("half-light radius (px)")
    ax.set_yscale("log")
    ax.legend(fontsize=7, markerscale=2)
    ax.set_title("magnitude-size plane", fontsize=9)
    return save_figure(fig, out)
