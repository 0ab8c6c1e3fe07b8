"""The error budget of the conventional measurement against the idealised truth (issue 13).

``casnet benchmark errors`` simulates galaxies with the default simulator, runs the pipeline the
labels come from (galclean, then :func:`~casnet.morphology.measure`) and compares C and A with
the idealised truth (:func:`~casnet.morphology.measurement.measure_truth`: the noiseless target
alone at its known centre). statmorph measures the same cleaned stamps with casnet's segmentation
and is compared with *its own* idealised truth (statmorph on the noiseless target, segmap = the
target's pixels), so each code is judged by its own definitions. Rows are galaxy kinds and SNR_p
bins; bias is the mean of measured - true, scatter the standard deviation, ``median_pull`` the
median of ``|measured - true| / sigma`` (casnet only: statmorph reports no errors for C and A).

This is a benchmark, not a test: it prints a table and writes
``benchmarks/error_budget.{json,md,png}``; the README's error budget is that table.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from casnet.bench.speed import statmorph_classes
from casnet.data.clean import galaxy_rng, galclean
from casnet.data.settings import CleanConfig, SimulateConfig
from casnet.data.simulate import simulate
from casnet.morphology import measure
from casnet.morphology.measurement import detect_target, measure_truth
from casnet.morphology.settings import MorphologyConfig
from casnet.morphology.sky import rough_sky

__all__ = ["SNR_BINS", "budget_table", "error_budget", "format_budget", "plot_budget"]

#: SNR_p bins of the issue and of the paper's noise suite
SNR_BINS: tuple[float, ...] = (2.0, 3.0, 5.0, 10.0, np.inf)


def _statmorph_ca(
    image: np.ndarray, segmap: np.ndarray, label: int, *, noiseless: bool = False
) -> tuple[float, float]:
    """statmorph's C and A (NaN when it flags the fit as bad or is not installed).

    On a noiseless image statmorph always flags 2 ("not background-subtracted": the galaxy's
    wings are all its sky holds), so there only its catastrophic failures count."""
    classes = statmorph_classes()
    if classes is None:
        return float("nan"), float("nan")
    ca_only = classes[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sm = ca_only(image, segmap, label, gain=1e4)
        except Exception:  # statmorph raises on degenerate segmaps; a NaN row says so
            return float("nan"), float("nan")
        c, a = float(sm.concentration), float(sm.asymmetry)
    if (sm.flag > 1 and not noiseless) or c < -90 or not np.isfinite(c + a):
        return float("nan"), float("nan")
    return c, a


def error_budget(
    n: int = 600,
    *,
    sim: SimulateConfig | None = None,
    clean: CleanConfig | None = None,
    morph: MorphologyConfig | None = None,
    use_statmorph: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Per-galaxy measured and idealised-truth C and A for ``n`` simulated galaxies.

    Returns
    -------
    pandas.DataFrame
        One row per galaxy: ``kind``, ``snr_p``, ``flag``, ``clean_flag``, casnet's ``c``, ``a``,
        ``c_err``, ``a_err``, ``c_true``, ``a_true`` and statmorph's ``sm_c``, ``sm_a``,
        ``sm_c_true``, ``sm_a_true`` (NaN when not run).
    """
    from tqdm import tqdm

    sim, clean, morph = sim or SimulateConfig(), clean or CleanConfig(), morph or MorphologyConfig()
    rows = []
    for g in tqdm(simulate(sim, n), total=n, desc="error budget", disable=not progress):
        ny, nx = g.image.shape
        centre = ((nx - 1) / 2 + g.params["x_offset_px"], (ny - 1) / 2 + g.params["y_offset_px"])
        cleaned = galclean(g.image, config=clean, rng=galaxy_rng(clean.seed, g.galaxy_id))
        m = measure(cleaned.image, config=morph, replaced=cleaned.replaced)
        t = measure_truth(g.truth, centre=centre, sky_sigma=g.sky_sigma, config=morph)
        row = {
            "galaxy_id": g.galaxy_id,
            "kind": g.params["kind"],
            "snr_p": m.snr_p,
            "flag": m.flag,
            "clean_flag": cleaned.flag,
            "c": m.concentration,
            "a": m.asymmetry,
            "c_err": m.concentration_err,
            "a_err": m.asymmetry_err,
            "c_true": t.concentration,
            "a_true": t.asymmetry,
            "sm_c": np.nan,
            "sm_a": np.nan,
            "sm_c_true": np.nan,
            "sm_a_true": np.nan,
        }
        if use_statmorph and m.flag == 0:
            img = np.asarray(cleaned.image, dtype=np.float64)
            seg = detect_target(img, rough_sky(img), morph)
            if seg.target:
                row["sm_c"], row["sm_a"] = _statmorph_ca(img - m.sky_mean, seg.labels, seg.target)
                truth = np.asarray(g.truth, dtype=np.float64)
                # statmorph's idealised truth: the noiseless target, its pixels above the same
                # threshold as its segment (as measure_truth defines the target's pixels)
                segmap = (truth > morph.detect_nsigma * g.sky_sigma).astype(np.int32)
                if segmap.any():
                    noisy = truth + np.random.default_rng(0).normal(
                        0, 1e-6 * g.sky_sigma, truth.shape
                    )
                    row["sm_c_true"], row["sm_a_true"] = _statmorph_ca(
                        noisy, segmap, 1, noiseless=True
                    )
        rows.append(row)
    return pd.DataFrame(rows)


def _stats(measured: pd.Series, true: pd.Series) -> tuple[int, float, float]:
    d = (measured - true).dropna()
    if d.empty:
        return 0, float("nan"), float("nan")
    return len(d), float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else float("nan")


def budget_table(
    rows: pd.DataFrame, *, snr_bins: Sequence[float] = SNR_BINS, exclude_flags: bool = True
) -> pd.DataFrame:
    """Bias and scatter of C and A against the idealised truth, by kind and by SNR_p bin.

    Only galaxies the pipeline would label (no measurement flag, no cleaning flag, SNR_p >= the
    lowest bin edge) count; ``exclude_flags=False`` keeps flagged rows (for diagnostics).
    """
    d = rows[np.isfinite(rows["snr_p"]) & (rows["snr_p"] >= snr_bins[0])]
    if exclude_flags:
        d = d[(d["flag"] == 0) & (d["clean_flag"] == 0)]
    labels = [
        f"SNR_p {lo:g}-{hi:g}" if np.isfinite(hi) else f"SNR_p > {lo:g}"
        for lo, hi in itertools.pairwise(snr_bins)
    ]
    d = d.assign(snr_bin=pd.cut(d["snr_p"], list(snr_bins), labels=labels, right=False))
    groups = [("all", d)] + [(f"kind {k}", g) for k, g in d.groupby("kind")]
    groups += [(str(b), g) for b, g in d.groupby("snr_bin", observed=True)]
    out = []
    for name, g in groups:
        row: dict[str, Any] = {"group": name}
        for q in ("c", "a"):
            n, bias, scatter = _stats(g[q], g[f"{q}_true"])
            row.update({"n": n, f"{q}_bias": bias, f"{q}_scatter": scatter})
            pull = ((g[q] - g[f"{q}_true"]).abs() / g[f"{q}_err"]).dropna()
            row[f"{q}_median_pull"] = float(pull.median()) if len(pull) else float("nan")
            _, sbias, sscatter = _stats(g[f"sm_{q}"], g[f"sm_{q}_true"])
            row.update({f"sm_{q}_bias": sbias, f"sm_{q}_scatter": sscatter})
        row["sm_n"] = int(np.isfinite(g["sm_c"] - g["sm_c_true"]).sum())
        out.append(row)
    return pd.DataFrame(out)


def format_budget(table: pd.DataFrame) -> str:
    """The table as Markdown (the README's error budget)."""
    header = (
        "| group | n | C bias | C scatter | A bias | A scatter | statmorph n | statmorph C bias | "
        "statmorph C scatter | statmorph A bias | statmorph A scatter |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [header]
    for r in table.itertuples():
        lines.append(
            f"| {r.group} | {r.n} | {r.c_bias:+.3f} | {r.c_scatter:.3f} | {r.a_bias:+.3f} | "
            f"{r.a_scatter:.3f} | {r.sm_n} | {r.sm_c_bias:+.3f} | {r.sm_c_scatter:.3f} | "
            f"{r.sm_a_bias:+.3f} | {r.sm_a_scatter:.3f} |"
        )
    return "\n".join(lines).replace("nan", "–")


def plot_budget(rows: pd.DataFrame, path: str | Path) -> Path:
    """Measured - true against SNR_p for C and A, casnet and statmorph, coloured by kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = rows[(rows["flag"] == 0) & (rows["clean_flag"] == 0) & (rows["snr_p"] >= SNR_BINS[0])]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for j, q in enumerate(("c", "a")):
        for i, (prefix, who) in enumerate((("", "casnet"), ("sm_", "statmorph"))):
            ax = axes[j, i]
            for kind, g in d.groupby("kind"):
                ax.scatter(g["snr_p"], g[f"{prefix}{q}"] - g[f"{prefix}{q}_true"], s=8,
                           alpha=0.6, label=kind)  # fmt: skip
            ax.axhline(0, color="k", lw=0.8)
            for edge in SNR_BINS[1:-1]:
                ax.axvline(edge, color="0.8", lw=0.6, zorder=0)
            ax.set_xscale("log")
            ax.set_title(f"{who}: {q.upper()} measured - idealised truth")
            if j == 1:
                ax.set_xlabel("SNR_p")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
