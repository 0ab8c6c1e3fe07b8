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
from casnet.core.layout import TARGETS
from casnet.data.io.store import StampStore
from casnet.evaluation.figures import deviation_vs_grid
from casnet.evaluation.predictor import Predictor
from casnet.evaluation.result import SuiteResult
from casnet.evaluation.settings import NoiseSuiteConfig
from casnet.morphology import FATAL, measure
from casnet.morphology.settings import MorphologyConfig

__all__ = ["deviation_summary", "inject_noise", "noise_suite"]

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


def deviation_summary(table: pd.DataFrame, grid: str, reference: float) -> pd.DataFrame:
    """Per method, target and grid value: mean, median, std of the deviation from the
    ``reference`` grid value of the same galaxy, the catastrophic fraction (outside 2 sigma of
    the mean) and N; and the mean and std of the deviation from the truth where known."""
    rows = []
    for method, prefix in METHODS.items():
        for t in TARGETS:
            col = f"{prefix}_{t}"
            ref = table[table[grid] == reference].set_index("galaxy_id")[col]
            for value, part in table.groupby(grid):
                dev = part[col].to_numpy(float) - ref.reindex(part["galaxy_id"]).to_numpy(float)
                dev = dev[np.isfinite(dev)]
                mean = float(dev.mean()) if dev.size else np.nan
                std = float(dev.std()) if dev.size else np.nan
                row = {"method": method, "target": t, grid: value, "n": int(dev.size),
                       "mean": mean, "median": float(np.median(dev)) if dev.size else np.nan,
                       "std": std,
                       "catastrophic": float(np.mean(np.abs(dev - mean) > 2 * std))
                       if dev.size and std > 0 else 0.0}  # fmt: skip
                if f"true_{t}" in part:
                    dt = (part[col] - part[f"true_{t}"]).to_numpy(float)
                    dt = dt[np.isfinite(dt)]
                    row["truth_mean"] = float(dt.mean()) if dt.size else np.nan
                    row["truth_std"] = float(dt.std()) if dt.size else np.nan
                rows.append(row)
    return pd.DataFrame(rows)


def _sample(predictor, val: StampStore, raw: StampStore, cfg: NoiseSuiteConfig):
    """Bright galaxies of the validation split on which network and conventional A agree."""
    cat = val.catalog
    bright = cat[(cat["snr_p"] > cfg.snr_min) & np.isfinite(cat["asymmetry"])]
    if "flag" in bright:
        bright = bright[(bright["flag"].astype(int) & int(FATAL)) == 0]
    index = pd.Series(np.arange(len(raw)), index=raw.catalog["galaxy_id"].astype(str))
    bright = bright[bright["galaxy_id"].astype(str).isin(index.index)]
    if bright.empty:
        return bright, np.zeros((0, *raw.stamp_shape), np.float32)
    rows = index[bright["galaxy_id"].astype(str)].to_numpy()
    images = np.stack([np.asarray(raw.array("image")[int(i)]) for i in rows])
    net_a = predictor.predict(images)["asymmetry"].to_numpy(float)
    agree = np.abs(net_a - bright["asymmetry"].to_numpy(float)) < cfg.max_delta_a
    bright, images = bright[agree], images[agree]
    if cfg.max_galaxies is not None and len(bright) > cfg.max_galaxies:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(bright), cfg.max_galaxies,
                                                              replace=False))  # fmt: skip
        bright, images = bright.iloc[keep], images[keep]
    return bright.reset_index(drop=True), images


def noise_suite(predictor: Predictor, val: str | Path, raw: str | Path, cfg: NoiseSuiteConfig,
                morph: MorphologyConfig, out: str | Path) -> SuiteResult:  # fmt: skip
    """Run the noise suite on the validation split (``val``) with its raw stamps (``raw``)."""
    result = SuiteResult("noise")
    sample, images = _sample(predictor, StampStore(val), StampStore(raw), cfg)
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
                   "conv_concentration": m.concentration, "conv_asymmetry": m.asymmetry,
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
    _metrics(result, summary)
    out = Path(out)
    result.figures.append(deviation_vs_grid(summary, "snr_target", out / "noise_deviation.png"))
    first = table[table["galaxy_id"] == table["galaxy_id"].iloc[0]]
    titles = [f"SNR_p {r.snr_target:g} (measured {r.snr_measured:.1f})" for r in first.itertuples()]
    result.figures.append(stamp_grid([stamps[i] for i in first.index], titles,
                                     out / "noise_examples.png", ncols=5))  # fmt: skip
    return result


#: the paper's Sec. 4.2 figures, for the summary table (network, MORFOMETRYKA)
PAPER = {
    "A scatter (SNR_p >= 5)": (0.025, 0.037),
    "C scatter (SNR_p >= 5)": (0.04, 0.07),
    "A bias at SNR_p = 3": (0.016, 0.028),
    "catastrophic fraction": (0.033, 0.043),
}


def _metrics(result: SuiteResult, summary: pd.DataFrame) -> None:
    values: dict[str, dict[str, float]] = {}
    meta: dict[str, dict] = {}  # quantity -> target and sample size (of the network's rows)
    for method in METHODS:
        s = summary[summary["method"] == method]
        for t in TARGETS:
            st = s[(s["target"] == t) & (s["snr_target"] >= 5)]
            # pooled scatter over the SNR_p >= 5 bins, weighted by N
            scatter = (
                float(np.sqrt(np.average(st["std"] ** 2, weights=st["n"])))
                if st["n"].sum()
                else np.nan
            )
            at3 = s[(s["target"] == t) & (s["snr_target"] == 3)]
            bias3 = float(at3["mean"].iloc[0]) if len(at3) else np.nan
            result.metrics[f"{method}_{t}_scatter_snr_ge5"] = scatter
            result.metrics[f"{method}_{t}_bias_snr3"] = bias3
            values.setdefault(f"{t[0].upper()} scatter (SNR_p >= 5)", {})[method] = scatter
            values.setdefault(f"{t[0].upper()} bias at SNR_p = 3", {})[method] = bias3
            if method == "network":
                meta[f"{t[0].upper()} scatter (SNR_p >= 5)"] = {
                    "target": t,
                    "n": int(st["n"].sum()),
                }
                meta[f"{t[0].upper()} bias at SNR_p = 3"] = {"target": t,
                                                            "n": int(at3["n"].sum())}  # fmt: skip
        sa = s[s["target"] == "asymmetry"]
        cat = float(np.average(sa["catastrophic"], weights=sa["n"])) if sa["n"].sum() else np.nan
        result.metrics[f"{method}_asymmetry_catastrophic"] = cat
        values.setdefault("catastrophic fraction", {})[method] = cat
        if method == "network":
            meta["catastrophic fraction"] = {"target": "asymmetry", "n": int(sa["n"].sum())}
    for quantity, by_method in values.items():
        paper = PAPER.get(quantity, (np.nan, np.nan))
        result.summary.append({"quantity": f"{quantity} (noise)", **by_method, **meta[quantity],
                               "paper": f"{paper[0]:g} / {paper[1]:g}"
                               if np.isfinite(paper[0]) else ""})  # fmt: skip
