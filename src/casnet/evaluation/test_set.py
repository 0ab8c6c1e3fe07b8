"""Test-set metrics (Tohill et al. 2021 Sec. 4.1, Figs. 5-7).

The networks are scored on the held-out test split against the labels; where the data came from
the simulator, both the networks and the conventional measurement are also scored against the
truth (our measurement of the noiseless image), which the paper could not do.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from casnet.core.calibration import miscalibration_reason
from casnet.core.figures import predicted_vs_label
from casnet.core.layout import TARGETS
from casnet.core.quantities import SCHEMA, symbol
from casnet.core.scores import degenerate_reason, scores
from casnet.data.io.store import StampStore
from casnet.evaluation.calibration import calibration_table, has_sigma, reliability_figure
from casnet.evaluation.figures import residuals_vs_snr
from casnet.evaluation.predictor import Predictor
from casnet.evaluation.result import SuiteResult

__all__ = ["test_set"]


#: the paper's test-set figures (Sec. 4.1): network against MORFOMETRYKA's labels (the schema's)
PAPER = {(t.name, k): v for t in SCHEMA for k, v in t.paper.items()}
NAMES = {"mae": "MAE", "rmse": "RMSE", "pearson_r": "Pearson r"}
#: SNR_p bins of the per-bin scores (the selection keeps SNR_p > 2)
SNR_EDGES = (2.0, 3.0, 5.0, 10.0, 20.0, np.inf)


def _scored(table: pd.DataFrame, reference: str, column: str) -> dict[str, float]:
    ok = np.isfinite(table[reference]) & np.isfinite(table[column])
    return scores(table.loc[ok, reference], table.loc[ok, column])


def scores_by_snr(table: pd.DataFrame, reference: str = "true") -> pd.DataFrame:
    """MAE, RMSE, Pearson r and mean residual of the network and the conventional measurement
    against ``reference`` (``true``: the simulator's truth; ``label``) per SNR_p bin
    (:data:`SNR_EDGES`) and target; C residuals also as fractions of the reference."""
    rows = []
    snr = table["snr_p"].to_numpy(float)
    for lo, hi in itertools.pairwise(SNR_EDGES):
        part = table[(snr > lo) & (snr <= hi)]
        for t in SCHEMA:
            for method in ("net", "conventional"):
                ref, col = f"{reference}_{t.name}", f"{method}_{t.name}"
                ok = np.isfinite(part[ref]) & np.isfinite(part[col])
                res = (part.loc[ok, col] - part.loc[ok, ref]).to_numpy(float)
                s = scores(part.loc[ok, ref], part.loc[ok, col])
                # a fractional quantity's residual also as a fraction of the reference (C)
                frac = t.residual_of(part.loc[ok, col], part.loc[ok, ref])
                rows.append({"snr_lo": lo, "snr_hi": hi, "target": t.name,
                             "method": "network" if method == "net" else "conventional",
                             **s, "bias": float(res.mean()) if res.size else np.nan,
                             "fractional_rmse": float(np.sqrt(np.mean(frac**2)))
                             if t.residual == "fractional" and res.size else np.nan})  # fmt: skip
    return pd.DataFrame(rows)


#: the methods whose sigmas are scored: the served model's and the conventional measurement's
CALIBRATED = {"net": "network", "conventional": "conventional"}


def _calibration(table: pd.DataFrame, result: SuiteResult, out: Path, *, has_truth: bool,
                 external: bool) -> None:  # fmt: skip
    """Coverage of the network's sigmas (and the conventional errors) at 1 and 2 sigma against
    the truth and the labels, per SNR_p bin, and the reliability diagram (issue 18). A network
    whose coverage against the labels lies outside issue 18's ranges goes into
    ``result.miscalibrated`` (metric ``{target}_sigma_miscalibrated``: 1)."""
    references = ("true", "label") if has_truth else ("label",)
    # our labels are the conventional measurement: its errors against itself are not a result
    skip = () if external else (("conventional", "label"),)
    frame = calibration_table(table, CALIBRATED, references=references, snr_edges=SNR_EDGES,
                              skip=skip)  # fmt: skip
    result.tables["test_calibration"] = frame
    for row in frame[frame["snr"] == "all"].itertuples():
        method = "net" if row.method == "network" else "conventional"
        for k in (1, 2):
            key = f"{row.target}_{method}_coverage_{k}sigma_vs_{row.reference}"
            result.metrics[key] = getattr(row, f"coverage_{k}sigma")
    for t in TARGETS:
        for ref in references:
            name = "truth" if ref == "true" else "label"
            for k in (1, 2):
                net = result.metrics.get(f"{t}_net_coverage_{k}sigma_vs_{name}", np.nan)
                conv = result.metrics.get(f"{t}_conventional_coverage_{k}sigma_vs_{name}", np.nan)
                result.summary.append({"quantity": f"{symbol(t)} coverage at {k} sigma vs "
                                       f"{name} (test)", "network": net, "conventional": conv,
                                       "target": t, "n": len(table), "sigma": True,
                                       "paper": "none (Sec. 4.4)"})  # fmt: skip
        if not np.isfinite(table[f"net_{t}_err"].to_numpy(float)).any():
            continue  # a point network for this target: no sigma to judge
        # the verdict on the network's sigma: against the labels, what it learnt and was
        # recalibrated on (the truth is not there for real data)
        c1, c2 = (result.metrics.get(f"{t}_net_coverage_{k}sigma_vs_label", np.nan)
                  for k in (1, 2))  # fmt: skip
        label, net, sigma = (table[c].to_numpy(float) for c in
                             (f"label_{t}", f"net_{t}", f"net_{t}_err"))  # fmt: skip
        judged = int((np.isfinite(label) & np.isfinite(net) & np.isfinite(sigma)
                      & (sigma > 0)).sum())  # fmt: skip
        reason = miscalibration_reason(c1, c2, judged)
        result.metrics[f"{t}_sigma_miscalibrated"] = float(bool(reason))
        if reason:
            result.miscalibrated[t] = f"{reason} against the labels"
    for ref in references:
        result.figures.append(reliability_figure(table, CALIBRATED, out / f"test_reliability_"
                                                 f"{'truth' if ref == 'true' else 'label'}.png",
                                                 reference=ref, skip=skip))  # fmt: skip


def test_set(predictor: Predictor, store: str | Path, out: str | Path) -> SuiteResult:
    """Score ``predictor`` on the test store; figures go to folder ``out``.

    Against the labels (what the network learnt; the paper's Sec. 4.1 figures stand beside
    these) and, where the data are simulated, against the truth for both the network and the
    conventional measurement, overall and per SNR_p bin. The conventional measurement against
    the labels is reported only for external labels (ours are that measurement: 0 by
    construction).
    """
    src = StampStore(store)
    cat = src.catalog
    images = src.array("image")
    preds = pd.concat(
        [predictor.predict(np.asarray(images[lo : lo + src.chunk_size]))
         for lo in range(0, len(src), src.chunk_size)],
        ignore_index=True,
    )  # fmt: skip
    table = pd.DataFrame({"galaxy_id": cat["galaxy_id"].astype(str)})
    table["snr_p"] = cat["snr_p"] if "snr_p" in cat else np.nan
    result = SuiteResult("test")
    has_truth = all(f"{t}_true" in cat for t in TARGETS)
    external = (cat["label_source"] == "external").to_numpy() if "label_source" in cat else None
    for t in TARGETS:
        table[f"label_{t}"] = cat[f"label_{t}"].to_numpy(float)
        table[f"net_{t}"] = preds[t].to_numpy(float)
        table[f"net_{t}_err"] = preds[f"{t}_err"].to_numpy(float)
        table[f"conventional_{t}"] = cat[t].to_numpy(float) if t in cat else np.nan
        table[f"conventional_{t}_err"] = (cat[f"{t}_err"].to_numpy(float) if f"{t}_err" in cat
                                          else np.nan)  # fmt: skip
        if has_truth:
            table[f"true_{t}"] = cat[f"{t}_true"].to_numpy(float)
        net = _scored(table, f"label_{t}", f"net_{t}")
        conv = None  # our labels are the conventional measurement: nothing to score
        if external is not None and external.any():
            conv = _scored(table[external], f"label_{t}", f"conventional_{t}")
        for k in ("mae", "rmse", "pearson_r"):
            result.metrics[f"{t}_{k}"] = net[k]
            if conv is not None:
                result.metrics[f"{t}_conventional_vs_label_{k}"] = conv[k]
        reason = degenerate_reason(table[f"label_{t}"], table[f"net_{t}"])
        result.metrics[f"{t}_degenerate"] = float(reason is not None)
        if reason is not None:
            result.degenerate[t] = reason
        for k, label in NAMES.items():
            result.summary.append({"quantity": f"{symbol(t)} {label} vs label (test)",
                                   "network": net[k],
                                   "conventional": conv[k] if conv is not None else np.nan,
                                   "target": t, "n": net["n"],
                                   "paper": f"{PAPER[(t, k)]:g}"})  # fmt: skip
        if has_truth:
            # both methods on the same galaxies: those the conventional measurement did not fail on
            common = table[np.isfinite(table[f"conventional_{t}"]) & np.isfinite(table[f"net_{t}"])]
            vs = {m: _scored(common, f"true_{t}", f"{m}_{t}") for m in ("net", "conventional")}
            for m, s in vs.items():
                for k in ("mae", "rmse", "pearson_r"):
                    result.metrics[f"{t}_{m}_vs_truth_{k}"] = s[k]
            for k, label in NAMES.items():
                result.summary.append({"quantity": f"{symbol(t)} {label} vs truth (test)",
                                       "network": vs["net"][k],
                                       "conventional": vs["conventional"][k],
                                       "target": t, "n": vs["net"]["n"]})  # fmt: skip
    result.metrics["n"] = len(table)
    out = Path(out)
    if has_sigma(table, "net"):
        _calibration(table, result, out, has_truth=has_truth,
                     external=external is not None and bool(external.any()))  # fmt: skip
    for t in TARGETS:
        panel = {"test": (table[f"label_{t}"], table[f"net_{t}"])}
        result.figures.append(predicted_vs_label(panel, t, out / f"test_{t}.png"))
    result.figures.append(residuals_vs_snr(table, out / "test_residuals_vs_snr.png"))
    result.tables["test_galaxies"] = table
    if has_truth:
        result.tables["test_by_snr"] = scores_by_snr(table, "true")
        result.figures.append(residuals_vs_snr(table, out / "test_residuals_vs_truth.png",
                                               reference="true",
                                               methods=("net", "conventional")))  # fmt: skip
    return result
