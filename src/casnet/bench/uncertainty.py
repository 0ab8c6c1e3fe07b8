"""Which per-galaxy uncertainty is better calibrated (issue 18): the Gaussian head's sigma, MC
dropout's spread, or both in quadrature, scored with the conventional measurement's errors on
the same test galaxies (``casnet benchmark uncertainty``; the science report's calibration
section).

The networks are run on the test store's network-ready stamps; each method's value and sigma
become columns of one table (``gaussian_*``, ``mc_dropout_*``, ``combined_*``, beside
``label_*``, ``true_*`` and ``conventional_*``), and :mod:`casnet.evaluation.calibration` scores
them against the truth and the labels, overall and per SNR_p bin.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from casnet.core.layout import ERR, TARGETS
from casnet.data.io.store import StampStore
from casnet.evaluation.calibration import calibration_score, calibration_table
from casnet.networks.inference import predict_mean_sigma
from casnet.networks.mc_dropout import DEFAULT_PASSES, mc_dropout, stochastic_network

__all__ = ["METHODS", "compare_uncertainties", "format_uncertainty_report", "method_table"]

#: column prefix -> what the method is
METHODS = {
    "gaussian": "Gaussian head",
    "mc_dropout": "MC dropout",
    "combined": "Gaussian head + MC dropout",
    "conventional": "conventional errors",
}


def method_table(networks: dict[str, Any], store: str | Path, *, passes: int = DEFAULT_PASSES,
                 seed: int = 0, batch_size: int = 512,
                 log: Callable[[str], None] | None = None) -> pd.DataFrame:  # fmt: skip
    """Each method's value and sigma for every galaxy of ``store`` (network-ready stamps).

    Parameters
    ----------
    networks : dict
        Target -> Keras network (a Gaussian head for the ``gaussian`` and ``combined`` columns;
        a point network gets NaN there and only the MC-dropout spread).
    passes, seed : int
        MC-dropout passes and the seed of their masks.
    """
    src = StampStore(store)
    cat = src.catalog
    table = pd.DataFrame({"galaxy_id": cat["galaxy_id"].astype(str)})
    table["snr_p"] = cat["snr_p"].to_numpy(float) if "snr_p" in cat else np.nan
    images = src.array("image")
    for t, net in networks.items():
        if log:
            log(f"uncertainty: {t}: Gaussian head and {passes} MC-dropout passes on {len(src)} "
                f"galaxies")  # fmt: skip
        stochastic = stochastic_network(net, seed)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("g", "gs", "m", "ms", "cs")}
        for lo in range(0, len(src), src.chunk_size):
            x = np.asarray(images[lo : lo + src.chunk_size], dtype=np.float32)[..., None]
            mu, sigma = predict_mean_sigma(net, x, batch_size)
            mc = mc_dropout(net, x, passes=passes, batch_size=batch_size, network=stochastic)
            for key, value in zip(parts, (mu, sigma, mc.mean, mc.epistemic, mc.total),
                                  strict=True):  # fmt: skip
                parts[key].append(value)
        got = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
        table[f"label_{t}"] = cat[f"label_{t}"].to_numpy(float)
        if f"{t}_true" in cat:
            table[f"true_{t}"] = cat[f"{t}_true"].to_numpy(float)
        table[f"gaussian_{t}"], table[f"gaussian_{t}{ERR}"] = got["g"], got["gs"]
        table[f"mc_dropout_{t}"], table[f"mc_dropout_{t}{ERR}"] = got["m"], got["ms"]
        aleatoric = np.isfinite(got["gs"])
        table[f"combined_{t}"] = got["m"]
        table[f"combined_{t}{ERR}"] = np.where(aleatoric, got["cs"], np.nan)
        for col, src_col in ((f"conventional_{t}", t), (f"conventional_{t}{ERR}", f"{t}{ERR}")):
            table[col] = cat[src_col].to_numpy(float) if src_col in cat else np.nan
    return table


def compare_uncertainties(
    table: pd.DataFrame, *, snr_edges=None, external_labels: bool = False
) -> tuple[pd.DataFrame, pd.Series]:
    """The coverage table of every method in ``table`` (:func:`method_table`) and each
    method's calibration score (lower is better; :func:`casnet.evaluation.calibration.
    calibration_score`). Our labels are the conventional measurement, so its errors are scored
    against the labels only when they are external."""
    references = ("true", "label") if any(f"true_{t}" in table for t in TARGETS) else ("label",)
    skip = () if external_labels else (("conventional", "label"),)
    frame = calibration_table(table, METHODS, references=references, snr_edges=snr_edges,
                              skip=skip)  # fmt: skip
    networks = frame[frame["method"] != METHODS["conventional"]]
    return frame, calibration_score(networks)


def format_uncertainty_report(frame: pd.DataFrame, score: pd.Series) -> str:
    """Markdown: the overall coverage of each method and the verdict."""
    overall = frame[frame["snr"] == "all"].drop(columns="snr")
    cols = ["method", "target", "reference", "n", "coverage_1sigma", "coverage_2sigma",
            "median_sigma", "rms_error", "calibrated"]  # fmt: skip
    lines = [
        overall[cols].to_markdown(index=False, floatfmt=".3g"),
        "",
        "Calibration score (mean over targets and references of |cov_1 - 0.683| + |cov_2 - "
        "0.954|; 0 is perfect): " + ", ".join(f"{m} {s:.3f}" for m, s in score.items()),
        "",
    ]
    if len(score):
        lines.append(f"Better calibrated: **{score.index[0]}**.")
    return "\n".join(lines)
