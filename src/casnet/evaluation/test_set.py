"""Test-set metrics (Tohill et al. 2021 Sec. 4.1, Figs. 5-7).

The networks are scored on the held-out test split against the labels; where the data came from
the simulator, both the networks and the conventional measurement are also scored against the
truth (our measurement of the noiseless image), which the paper could not do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from casnet.core.figures import predicted_vs_label
from casnet.core.layout import TARGETS
from casnet.core.scores import degenerate_reason, scores
from casnet.data.io.store import StampStore
from casnet.evaluation.figures import residuals_vs_snr
from casnet.evaluation.predictor import Predictor
from casnet.evaluation.result import SuiteResult

__all__ = ["test_set"]


def test_set(predictor: Predictor, store: str | Path, out: str | Path) -> SuiteResult:
    """Score ``predictor`` on the test store; figures go to folder ``out``."""
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
    for t in TARGETS:
        table[f"label_{t}"] = cat[f"label_{t}"].to_numpy(float)
        table[f"net_{t}"] = preds[t].to_numpy(float)
        table[f"conventional_{t}"] = cat[t].to_numpy(float) if t in cat else np.nan
        if has_truth:
            table[f"true_{t}"] = cat[f"{t}_true"].to_numpy(float)
        labelled = np.isfinite(table[f"label_{t}"]) & np.isfinite(table[f"net_{t}"])
        net = scores(table.loc[labelled, f"label_{t}"], table.loc[labelled, f"net_{t}"])
        for k in ("mae", "rmse", "pearson_r"):
            result.metrics[f"{t}_{k}"] = net[k]
        reason = degenerate_reason(table[f"label_{t}"], table[f"net_{t}"])
        result.metrics[f"{t}_degenerate"] = float(reason is not None)
        if reason is not None:
            result.degenerate[t] = reason
        for name in ("rmse", "pearson_r"):
            label = "RMSE" if name == "rmse" else "Pearson r"
            result.summary.append({"quantity": f"{t[0].upper()} {label} vs label (test)",
                                   "network": net[name], "conventional": np.nan,
                                   "target": t, "n": net["n"]})  # fmt: skip
        if has_truth:
            ok = np.isfinite(table[f"true_{t}"]) & np.isfinite(table[f"conventional_{t}"])
            vs = {m: scores(table.loc[ok, f"true_{t}"], table.loc[ok, f"{m}_{t}"])
                  for m in ("net", "conventional")}  # fmt: skip
            for m, s in vs.items():
                for k in ("mae", "rmse", "pearson_r"):
                    result.metrics[f"{t}_{m}_vs_truth_{k}"] = s[k]
            result.summary.append({"quantity": f"{t[0].upper()} RMSE vs truth (test)",
                                   "network": vs["net"]["rmse"],
                                   "conventional": vs["conventional"]["rmse"],
                                   "target": t, "n": vs["net"]["n"]})  # fmt: skip
    result.metrics["n"] = len(table)
    out = Path(out)
    for t in TARGETS:
        panel = {"test": (table[f"label_{t}"], table[f"net_{t}"])}
        result.figures.append(predicted_vs_label(panel, t, out / f"test_{t}.png"))
    result.figures.append(residuals_vs_snr(table, out / "test_residuals_vs_snr.png"))
    result.tables["test_galaxies"] = table
    return result
