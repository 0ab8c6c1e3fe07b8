"""The noise suite (Tohill et al. 2021 Sec. 4.2, Figs. 8-10).

Bright galaxies (SNR_p > 10) on which the network and the conventional measurement agree are
degraded to a grid of lower SNR_p, and both methods measure every version; the deviations from the
SNR_p = 10 (first grid value) measurement show how each method's C and A drift and scatter as the
signal fades. With simulated data both are also compared with the truth.

Noise injection (Sec. 4.2): with the original's background mean ``b`` and sigma ``s`` and its
SNR_p ``S``, the degraded stamp is ``N(b, s) + f (I - b)`` with ``f = r / sqrt(1 - r^2)`` and
``r = S_target / S``: the signal scales by ``f`` and the noise becomes ``s sqrt(1 + f^2)``, so
SNR_p becomes ``S f / sqrt(1 + f^2) = S_target`` (R_p and q unchanged). After the network's max
normalisation this equals adding noise of ``s sqrt(1/r^2 - 1)`` to the original.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from casnet.core.figures import stamp_grid
from casnet.core.flags import BAD_VALUES
from casnet.core.layout import TARGETS
from casnet.core.quantities import symbol
from casnet.data.io.store import StampStore
from casnet.evaluation.figures import deviation_histograms, deviation_vs_grid
from casnet.evaluation.predictor import Predictor
from casnet.evaluation.result import SuiteResult
from casnet.evaluation.settings import NoiseSuiteConfig
from casnet.morphology import measure
from casnet.morphology.settings import MorphologyConfig

__all__ = ["agreeing", "deviation_summary", "inject_noise", "noise_suite", "pooled_deviation"]

METHODS = {"network": "net", "conventional": "conv"}


def inject_noise(image: np.ndarray, *, sky_mean: float, sky_sigma: float, snr: float,
                 snr_target: float, rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """``image`` degraded from SNR_p ``snr`` to ``snr_target`` (see the module docstring).

    Raises
    ------
    ValueError
        When ``snr_target`` is not below ``snr`` (noise cannot be removed) or inputs are not
        finite and positive.
    """
    if not (np.isfinite(snr) and snr > 0 and sky_sigma > 0 and snr_target > 0):
        raise ValueError(f"need finite positive SNR_p and sky sigma, got {snr}, {sky_sigma}")
    if snr_target >= snr:
        raise ValueError(f"target SNR_p {snr_target} is not below the original's {snr:.3g}")
    r = snr_target / snr
    f = r / np.sqrt(1.0 - r * r)
    noise = rng.normal(sky_mean, sky_sigma, size=image.shape)
    return (noise + f * (np.asarray(image, dtype=np.float64) - sky_mean)).astype(np.float32)


def _stats(dev: np.ndarray) -> dict[str, float]:
    """N, mean, median, standard deviation and the catastrophic fraction (outside 2 sigma of the
    mean, Sec. 4.2) of the finite values of ``dev``."""
    dev = np.asarray(dev, dtype=np.float64)
    dev = dev[np.isfinite(dev)]
    if not dev.size:
        return {"n": 0, "mean": np.nan, "median": np.nan, "std": np.nan, "catastrophic": np.nan}
    mean, std = float(dev.mean()), float(dev.std())
    outside = float(np.mean(np.abs(dev - mean) > 2 * std)) if std > 0 else 0.0
    return {"n": int(dev.size), "mean": mean, "median": float(np.median(dev)), "std": std,
            "catastrophic": outside}  # fmt: skip


def _deviations(table: pd.DataFrame, grid: str, reference: float, col: str) -> pd.Series:
    """``col`` minus the same galaxy's value at the ``reference`` grid value, per row."""
    ref = table[table[grid] == reference].set_index("galaxy_id")[col]
    return table[col] - ref.reindex(table["galaxy_id"]).to_numpy(float)


def deviation_summary(table: pd.DataFrame, grid: str, reference: float) -> pd.DataFrame:
    """Per method, target and grid value: N, mean, median, standard deviation and catastrophic
    fraction (outside 2 sigma of the mean) of the deviation from the ``reference`` grid value of
    the same galaxy; and, where the truth is known (``true_<target>`` columns), the same of the
    deviation from the truth (``truth_*``: the reference itself is off from it)."""
    rows = []
    for method, prefix in METHODS.items():
        for t in TARGETS:
            col = f"{prefix}_{t}"
            dev = _deviations(table, grid, reference, col)
            for value, part in table.groupby(grid):
                row = {"method": method, "target": t, grid: value,
                       **_stats(dev.loc[part.index])}  # fmt: skip
                if f"true_{t}" in part:
                    vs = _stats(part[col] - part[f"true_{t}"])
                    row.update({f"truth_{k}": v for k, v in vs.items() if k != "n"})
                rows.append(row)
    return pd.DataFrame(rows)


def pooled_deviation(table: pd.DataFrame, grid: str, reference: float,
                     keep: pd.Series) -> pd.DataFrame:  # fmt: skip
    """The deviations of the rows ``keep`` (e.g. SNR_p >= 5) pooled, per method and target.

    The paper's scatter and catastrophic fraction (Sec. 4.2) are the standard deviation at
    SNR_p >= 5 and the share outside 2 sigma of the mean there. The reference rows are left out
    whatever ``keep`` says: their deviation is 0 by construction and would shrink both figures
    (by ~9% with the default grid). Columns as :func:`deviation_summary`, one row per method
    and target.
    """
    keep = keep & (table[grid] != reference)
    rows = []
    for method, prefix in METHODS.items():
        for t in TARGETS:
            col = f"{prefix}_{t}"
            dev = _deviations(table, grid, reference, col)[keep]
            row = {"method": method, "target": t, **_stats(dev)}
            if f"true_{t}" in table:
                vs = _stats((table[col] - table[f"true_{t}"])[keep])
                row.update({f"truth_{k}": v for k, v in vs.items() if k != "n"})
            rows.append(row)
    return pd.DataFrame(rows)


def agreeing(catalog: pd.DataFrame, predicted: pd.DataFrame, cfg: NoiseSuiteConfig) -> np.ndarray:
    """The paper's sample condition (Sec. 4.2): network and conventional A within
    ``max_delta_a`` and C within ``max_delta_c`` (None: no condition on C)."""
    ok = np.abs(predicted["asymmetry"].to_numpy(float) - catalog["asymmetry"].to_numpy(float))
    ok = ok < cfg.max_delta_a
    if cfg.max_delta_c is not None:
        dc = predicted["concentration"].to_numpy(float) - catalog["concentration"].to_numpy(float)
        ok &= np.abs(dc) < cfg.max_delta_c
    return ok


def _sample(predictor, val: StampStore, raw: StampStore, cfg: NoiseSuiteConfig, counts: dict):
    """Bright galaxies of the validation split on which network and conventional C and A agree;
    ``counts`` gets how many were bright (unflagged, with a raw stamp) and how many agreed."""
    cat = val.catalog
    bright = cat[(cat["snr_p"] > cfg.snr_min) & np.isfinite(cat["asymmetry"])]
    if "flag" in bright:
        # neither failed nor impossible (UNPHYSICAL) measurements are a reference
        bright = bright[(bright["flag"].astype(int) & int(BAD_VALUES)) == 0]
    index = pd.Series(np.arange(len(raw)), index=raw.catalog["galaxy_id"].astype(str))
    bright = bright[bright["galaxy_id"].astype(str).isin(index.index)]
    counts["n_bright"] = len(bright)
    if bright.empty:
        return bright, np.zeros((0, *raw.stamp_shape), np.float32)
    rows = index[bright["galaxy_id"].astype(str)].to_numpy()
    images = np.stack([np.asarray(raw.array("image")[int(i)]) for i in rows])
    agree = agreeing(bright, predictor.predict(images), cfg)
    bright, images = bright[agree], images[agree]
    counts["n_agree"] = len(bright)
    if cfg.max_galaxies is not None and len(bright) > cfg.max_galaxies:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(bright), cfg.max_galaxies,
                                                              replace=False))  # fmt: skip
        bright, images = bright.iloc[keep], images[keep]
    return bright.reset_index(drop=True), images


def noise_suite(predictor: Predictor, val: str | Path, raw: str | Path, cfg: NoiseSuiteConfig,
                morph: MorphologyConfig, out: str | Path) -> SuiteResult:  # fmt: skip
    """Run the noise suite on the validation split (``val``) with its raw stamps (``raw``)."""
    result = SuiteResult("noise")
    counts: dict[str, int] = {}
    sample, images = _sample(predictor, StampStore(val), StampStore(raw), cfg, counts)
    result.metrics.update(counts)
    result.metrics["n_galaxies"] = len(sample)
    if sample.empty:
        result.summary.append({"quantity": "noise suite: no galaxy passes the selection",
                               "network": np.nan, "conventional": np.nan})  # fmt: skip
        return result
    grid = [float(g) for g in cfg.snr_grid]
    rows, stamps = [], []
    for i, (gal, image) in enumerate(zip(sample.itertuples(index=False), images, strict=True)):
        m0 = measure(image.astype(np.float64), config=morph)
        for k, target in enumerate(grid):
            rng = np.random.default_rng([cfg.seed, i, k])
            try:
                noisy = inject_noise(image, sky_mean=m0.sky_mean, sky_sigma=m0.sky_sigma,
                                     snr=m0.snr_p, snr_target=target, rng=rng)  # fmt: skip
            except ValueError:
                continue  # cannot reach this SNR_p from this galaxy: no row, counted below
            m = measure(noisy.astype(np.float64), config=morph)
            row = {"galaxy_id": str(gal.galaxy_id), "snr_target": target, "snr_measured": m.snr_p,
                   **{f"conv_{t}": getattr(m, t) for t in TARGETS},
                   "conv_flag": int(m.flag)}  # fmt: skip
            for t in TARGETS:
                if f"{t}_true" in sample:
                    row[f"true_{t}"] = float(getattr(gal, f"{t}_true"))
            rows.append(row)
            stamps.append(noisy)
    table = pd.DataFrame(rows)
    preds = predictor.predict(np.stack(stamps))
    for t in TARGETS:
        table[f"net_{t}"] = preds[t].to_numpy(float)
    summary = deviation_summary(table, "snr_target", grid[0])
    result.tables["noise_galaxies"] = table
    result.tables["noise_summary"] = summary
    result.tables["noise_pooled"] = _metrics(result, table, summary, grid[0])
    out = Path(out)
    result.figures.append(deviation_vs_grid(summary, "snr_target", out / "noise_deviation.png",
                                            reference=grid[0], suite="noise suite"))  # fmt: skip
    keep = (table["snr_target"] >= POOLED_SNR) & (table["snr_target"] != grid[0])
    devs = {(method, t): _deviations(table, "snr_target", grid[0], f"{prefix}_{t}")[keep]
            for method, prefix in METHODS.items() for t in TARGETS}  # fmt: skip
    result.figures.append(deviation_histograms(devs, out / "noise_histograms.png"))
    if "truth_mean" in summary:
        vs_truth = summary.drop(columns=["mean", "std"]).rename(
            columns={"truth_mean": "mean", "truth_std": "std"})  # fmt: skip
        png = out / "noise_vs_truth.png"
        what = "value minus the truth"
        result.figures.append(deviation_vs_grid(vs_truth, "snr_target", png, what,
                                                suite="noise suite"))  # fmt: skip
    first = table[table["galaxy_id"] == table["galaxy_id"].iloc[0]]
    titles = [f"SNR_p {r.snr_target:g} (measured {r.snr_measured:.1f})" for r in first.itertuples()]
    result.figures.append(stamp_grid([stamps[i] for i in first.index], titles,
                                     out / "noise_examples.png", ncols=5))  # fmt: skip
    return result


#: the paper's Sec. 4.2 figures, for the summary table (network, MORFOMETRYKA), keyed as the
#: summary's quantities; only quantities defined as the paper defines them are keyed here
PAPER = {
    "A scatter (SNR_p >= 5)": (0.025, 0.037),
    "C scatter (SNR_p >= 5)": (0.04, 0.07),
    "A bias at SNR_p = 3": (0.016, 0.028),
    "A catastrophic fraction (SNR_p >= 5)": (0.033, 0.043),
}
#: the deviations pooled for the paper's scatter and catastrophic fraction: SNR_p >= this
POOLED_SNR = 5.0
#: the SNR_p of the paper's bias figure
BIAS_SNR = 3.0


def _metrics(result: SuiteResult, table: pd.DataFrame, summary: pd.DataFrame,
             reference: float) -> pd.DataFrame:  # fmt: skip
    """Metrics and summary rows; returns the pooled deviations at SNR_p >= 5 (reference out)."""
    pooled = pooled_deviation(table, "snr_target", reference, table["snr_target"] >= POOLED_SNR)
    has_truth = "truth_mean" in summary
    rows: dict[str, dict] = {}  # quantity -> {method: value, target, n}

    def put(quantity: str, method: str, value: float, target: str, n: int) -> None:
        row = rows.setdefault(quantity, {"target": target})
        row[method] = value
        if method == "network":
            row["n"] = n

    for method in METHODS:
        for t in TARGETS:
            x = symbol(t)
            p = pooled[(pooled["method"] == method) & (pooled["target"] == t)].iloc[0]
            at3 = summary[(summary["method"] == method) & (summary["target"] == t)
                          & (summary["snr_target"] == BIAS_SNR)]  # fmt: skip
            n3 = int(at3["n"].iloc[0]) if len(at3) else 0
            bias3 = float(at3["mean"].iloc[0]) if len(at3) else np.nan
            m = result.metrics
            m[f"{method}_{t}_scatter_snr_ge5"] = float(p["std"])
            m[f"{method}_{t}_catastrophic"] = float(p["catastrophic"])
            m[f"{method}_{t}_bias_snr3"] = bias3
            put(f"{x} scatter (SNR_p >= 5)", method, float(p["std"]), t, int(p["n"]))
            put(f"{x} bias at SNR_p = 3", method, bias3, t, n3)
            put(f"{x} catastrophic fraction (SNR_p >= 5)", method, float(p["catastrophic"]), t,
                int(p["n"]))  # fmt: skip
            if has_truth:
                truth3 = float(at3["truth_mean"].iloc[0]) if len(at3) else np.nan
                m[f"{method}_{t}_truth_bias_snr3"] = truth3
                m[f"{method}_{t}_truth_bias_snr_ge5"] = float(p["truth_mean"])
                m[f"{method}_{t}_truth_scatter_snr_ge5"] = float(p["truth_std"])
                put(f"{x} minus truth at SNR_p = 3, mean", method, truth3, t, n3)
                put(f"{x} minus truth (SNR_p >= 5), std", method, float(p["truth_std"]), t,
                    int(p["n"]))  # fmt: skip
    for quantity, row in rows.items():
        paper = PAPER.get(quantity)
        quoted = f"{paper[0]:g} / {paper[1]:g}" if paper else ""
        result.summary.append({"quantity": f"{quantity} (noise)", **row, "paper": quoted})
    return pooled
