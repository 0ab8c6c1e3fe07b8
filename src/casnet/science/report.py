"""The science run's committed report (issue 17): ``reports/science/`` with ``metrics.json``, the
figures, ``report.md`` and the per-galaxy test table, everything recomputable from that table.

Read from the run's own MLflow store (the evaluation run, the training runs, the searches) and
its DVC lock; the networks trained on the truth (``--labels truth``, not registered) are scored
here on the same test galaxies as the registered ones.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from casnet.core.layout import ERR, TARGETS, TEST, VAL
from casnet.core.quantities import symbol
from casnet.core.scores import degenerate_reason, scores
from casnet.core.tracking import git_commit, tracking_uri, use_store
from casnet.data.io.store import StampStore
from casnet.networks.pretrained import PACKAGE_DIR

__all__ = [
    "PAPER",
    "SEED_METRICS",
    "calibration_section",
    "chosen_trainings",
    "galaxy_table",
    "low_snr_over_seeds",
    "mean_sd",
    "mean_sd_text",
    "merger_regime",
    "over_seeds",
    "paper_table",
    "real_section",
    "recalibration_table",
    "seed_table",
    "targets_table",
    "train_set_lines",
    "write_report",
]

#: the paper's headline numbers (Tohill et al. 2021 Secs. 4.1-4.4) as issue 17 lists them:
#: quantity -> (network, MORFOMETRYKA or None), and the metric of the evaluation run beside it
PAPER = {
    "C MAE vs label (test)": ((0.15, None), ("test_concentration_mae", None)),
    "C RMSE vs label (test)": ((0.21, None), ("test_concentration_rmse", None)),
    "C Pearson r vs label (test)": ((0.75, None), ("test_concentration_pearson_r", None)),
    "A MAE vs label (test)": ((0.045, None), ("test_asymmetry_mae", None)),
    "A RMSE vs label (test)": ((0.065, None), ("test_asymmetry_rmse", None)),
    "A Pearson r vs label (test)": ((0.76, None), ("test_asymmetry_pearson_r", None)),
    "C scatter, SNR_p >= 5 (noise)": (
        (0.04, 0.07),
        (
            "noise_network_concentration_scatter_snr_ge5",
            "noise_conventional_concentration_scatter_snr_ge5",
        ),
    ),
    "A scatter, SNR_p >= 5 (noise)": (
        (0.025, 0.037),
        ("noise_network_asymmetry_scatter_snr_ge5", "noise_conventional_asymmetry_scatter_snr_ge5"),
    ),
    "A bias at SNR_p = 3 (noise)": (
        (0.016, 0.028),
        ("noise_network_asymmetry_bias_snr3", "noise_conventional_asymmetry_bias_snr3"),
    ),
    "A catastrophic fraction, SNR_p >= 5 (noise)": (
        (0.033, 0.043),
        ("noise_network_asymmetry_catastrophic", "noise_conventional_asymmetry_catastrophic"),
    ),
    "C mean fractional dC, z = 1-3 (redshift)": (
        (0.15, 0.26),
        (
            "redshift_network_concentration_mean_frac_dev_z1_3",
            "redshift_conventional_concentration_mean_frac_dev_z1_3",
        ),
    ),
}


def paper_table(metrics: dict[str, float], degenerate: dict[str, str]) -> pd.DataFrame:
    """The headline quantities, ours (network, conventional) beside the paper's. A degenerate
    network's number is not set beside the paper's."""
    rows = []
    for quantity, ((p_net, p_conv), (k_net, k_conv)) in PAPER.items():
        target = "concentration" if quantity.startswith("C ") else "asymmetry"
        net = metrics.get(k_net, np.nan)
        rows.append({"quantity": quantity,
                     "network": "degenerate" if target in degenerate else net,
                     "conventional": metrics.get(k_conv, np.nan) if k_conv else np.nan,
                     "paper network": p_net,
                     "paper MFMTK": p_conv if p_conv is not None else np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def galaxy_table(evaluated: pd.DataFrame, truth_nets: dict[str, np.ndarray],
                 truth_sigmas: dict[str, np.ndarray] | None = None) -> pd.DataFrame:  # fmt: skip
    """The committed per-galaxy test table: ``galaxy_id``, ``snr_p`` and per quantity the label,
    the truth, the registered network's prediction (``pred_*``) and its sigma (``pred_*_err``,
    issue 18; NaN for a point network), the truth-trained network's (``pred_truthnet_*`` and
    ``pred_truthnet_*_err``, when trained) and the conventional value with its error."""
    truth_sigmas = truth_sigmas or {}
    out = evaluated[["galaxy_id", "snr_p"]].copy()
    for t in TARGETS:
        out[f"label_{t}"] = evaluated[f"label_{t}"]
        if f"true_{t}" in evaluated:
            out[f"true_{t}"] = evaluated[f"true_{t}"]
        out[f"pred_{t}"] = evaluated[f"net_{t}"]
        out[f"pred_{t}{ERR}"] = evaluated.get(f"net_{t}{ERR}", np.nan)
        if t in truth_nets:
            out[f"pred_truthnet_{t}"] = truth_nets[t]
            out[f"pred_truthnet_{t}{ERR}"] = truth_sigmas.get(t, np.nan)
        out[f"conventional_{t}"] = evaluated[f"conventional_{t}"]
        out[f"conventional_{t}{ERR}"] = evaluated.get(f"conventional_{t}{ERR}", np.nan)
    return out


def _by_snr(table: pd.DataFrame) -> pd.DataFrame:
    """RMSE and bias against the truth per SNR_p bin: each network and the conventional value."""
    from casnet.evaluation.test_set import SNR_EDGES

    rows = []
    snr = table["snr_p"].to_numpy(float)
    for lo, hi in itertools.pairwise(SNR_EDGES):
        part = table[(snr > lo) & (snr <= hi)]
        for t in TARGETS:
            if f"true_{t}" not in part:
                continue
            row = {"SNR_p": f"{lo:g}-{hi:g}", "quantity": t, "n": len(part)}
            for name, col in (("network (labels)", f"pred_{t}"),
                              ("network (truth)", f"pred_truthnet_{t}"),
                              ("conventional", f"conventional_{t}")):  # fmt: skip
                if col not in part:
                    continue
                ok = np.isfinite(part[col]) & np.isfinite(part[f"true_{t}"])
                s = scores(part.loc[ok, f"true_{t}"], part.loc[ok, col])
                res = (part.loc[ok, col] - part.loc[ok, f"true_{t}"]).to_numpy(float)
                row[f"{name} RMSE"] = s["rmse"]
                row[f"{name} bias"] = float(res.mean()) if res.size else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


#: issue 30's merger regime: the conventional cuts (A > 0.3, Conselice 2003; and 0.35)
MERGER_CUTS = (0.3, 0.35)
#: bins of the reference A for the bias (the high-A tail is where the network was squeezed)
A_BINS = (-np.inf, 0.1, 0.2, 0.3, 0.4, np.inf)
#: the methods scored in the merger regime: name -> column of the galaxy table
_A_METHODS = {"network (labels)": "pred_asymmetry", "network (truth)": "pred_truthnet_asymmetry",
              "conventional": "conventional_asymmetry"}  # fmt: skip


def merger_regime(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Issue 30's merger regime on the test galaxies (:func:`galaxy_table`'s columns).

    Returns
    -------
    (detection, bias)
        ``detection``: per cut of :data:`MERGER_CUTS`, reference (``label`` or ``truth``), SNR_p
        bin (``all`` and :data:`casnet.evaluation.test_set.SNR_EDGES`) and method, the galaxies
        above the cut by the reference (``n_ref``) and by the method (``n_method``), both
        (``n_both``), ``recall`` = n_both / n_ref and ``precision`` = n_both / n_method (NaN
        where the denominator is 0). The conventional value against the labels is the labels.
        ``bias``: per reference, bin of the reference A (:data:`A_BINS`) and method, ``n`` and
        the mean of method - reference.
    """
    from casnet.evaluation.test_set import SNR_EDGES

    snr = table["snr_p"].to_numpy(float)
    bins = [("all", np.ones(len(table), bool))]
    bins += [(f"{lo:g}-{hi:g}", (snr > lo) & (snr <= hi))
             for lo, hi in itertools.pairwise(SNR_EDGES)]  # fmt: skip
    refs = {r: f"{'label' if r == 'label' else 'true'}_asymmetry" for r in ("label", "truth")}
    methods = {k: c for k, c in _A_METHODS.items() if c in table}
    detection, bias = [], []
    for ref, ref_col in refs.items():
        if ref_col not in table:
            continue
        ref_values = table[ref_col].to_numpy(float)
        for name, col in methods.items():
            values = table[col].to_numpy(float)
            ok = np.isfinite(ref_values) & np.isfinite(values)
            for cut in MERGER_CUTS:
                for snr_bin, mask in bins:
                    m = ok & mask
                    is_ref, is_method = m & (ref_values > cut), m & (values > cut)
                    n_ref, n_method = int(is_ref.sum()), int(is_method.sum())
                    n_both = int((is_ref & is_method).sum())
                    detection.append({
                        "cut": cut, "reference": ref, "SNR_p": snr_bin, "method": name,
                        "n": int(m.sum()), "n_ref": n_ref, "n_method": n_method,
                        "n_both": n_both,
                        "recall": n_both / n_ref if n_ref else np.nan,
                        "precision": n_both / n_method if n_method else np.nan,
                    })  # fmt: skip
            for lo, hi in itertools.pairwise(A_BINS):
                m = ok & (ref_values > lo) & (ref_values <= hi)
                res = values[m] - ref_values[m]
                bias.append({"reference": ref, "A bin": f"{lo:g}-{hi:g}", "method": name,
                             "n": int(m.sum()),
                             "bias": float(res.mean()) if res.size else np.nan})  # fmt: skip
    return pd.DataFrame(detection), pd.DataFrame(bias)


#: recalibration study: A below this is the "low-A" regime whose accuracy must not be lost
LOW_A = 0.2


def recalibration_table(runs: list[dict]) -> pd.DataFrame:
    """Each recalibration of the mean on the run's label-trained networks, mean and sample sd
    over seeds (issue 30 item 2: reproduce the high-A tail without losing the low-A accuracy).

    Parameters
    ----------
    runs : list of dict
        One per (network, method): ``target``, ``seed``, ``method`` (``none``, ``isotonic``,
        ``quantile``: :mod:`casnet.networks.recalibration`, fitted on the validation set), and
        ``label`` and ``pred``, arrays over the test galaxies.

    Returns
    -------
    DataFrame
        One row per (target, method): ``n_seeds``, then ``<metric>_mean`` / ``_sd`` of RMSE, MAE
        and Pearson r against the labels, and for A the MAE where label <= :data:`LOW_A`, the
        bias where label > 0.3, and recall and precision at A > 0.3 against the labels.
    """
    scored = []
    for run in runs:
        y, p = np.asarray(run["label"], float), np.asarray(run["pred"], float)
        ok = np.isfinite(y) & np.isfinite(p)
        y, p = y[ok], p[ok]
        row = {"target": run["target"], "method": run["method"], "seed": run["seed"],
               "rmse": float(np.sqrt(np.mean((p - y) ** 2))),
               "mae": float(np.mean(np.abs(p - y))),
               "pearson_r": float(np.corrcoef(y, p)[0, 1]) if y.size > 1 else np.nan}  # fmt: skip
        if run["target"] == "asymmetry":
            cut = MERGER_CUTS[0]
            low, high = y <= LOW_A, y > cut
            both = int((high & (p > cut)).sum())
            row.update({"mae_low_a": float(np.mean(np.abs(p - y)[low])) if low.any() else np.nan,
                        "bias_high_a": float(np.mean((p - y)[high])) if high.any() else np.nan,
                        "recall_0.3": both / high.sum() if high.any() else np.nan,
                        "precision_0.3": both / (p > cut).sum() if (p > cut).any()
                        else np.nan})  # fmt: skip
        scored.append(row)
    frame = pd.DataFrame(scored)
    if frame.empty:
        return frame
    order = {"none": 0, "isotonic": 1, "quantile": 2}
    metrics = [c for c in frame.columns if c not in ("target", "method", "seed")]
    out = over_seeds(frame, ["target", "method"], metrics)
    out["_o"] = out["method"].map(order).fillna(9)
    return out.sort_values(["target", "_o"]).drop(columns="_o").reset_index(drop=True)


def _recalibration_runs(trainings: dict[str, dict], root: Path, val: Path,
                        test: Path) -> list[dict]:  # fmt: skip
    """The label-trained networks of ``trainings`` (step -> record with ``run_id`` and
    ``params``) without their recalibration, then with each method fitted on ``val``, on
    ``test``: the runs of :func:`recalibration_table`."""
    from casnet.networks.inference import predict_store
    from casnet.networks.mlmodel import load_logged_network
    from casnet.networks.recalibration import (
        RECALIBRATIONS,
        apply_mean_map,
        bare_network,
        fit_mean_map,
    )

    runs = []
    with use_store(root):
        for record in trainings.values():
            p = record.get("params", {})
            if p.get("labels", "label") != "label" or not record.get("run_id"):
                continue
            t = p.get("target")
            net = bare_network(load_logged_network(f"runs:/{record['run_id']}/model"))
            val_y, val_p = predict_store(net, val, t)
            test_y, test_p = predict_store(net, test, t)
            for method in RECALIBRATIONS:
                try:
                    pred = test_p if method == "none" else apply_mean_map(
                        test_p, *fit_mean_map(val_p, val_y, method))  # fmt: skip
                except ValueError:  # a constant output (a degenerate seed): no map exists
                    pred = np.full_like(test_p, np.nan)
                runs.append({"target": t, "seed": p.get("seed", "?"), "method": method,
                             "label": test_y, "pred": pred})  # fmt: skip
    return runs


def _recalibration_lines(table: pd.DataFrame) -> list[str]:
    if table.empty:
        return []

    keys = ["rmse", "mae", "pearson_r", "mae_low_a", "bias_high_a", "recall_0.3",
            "precision_0.3"]  # fmt: skip
    lines = ["## Recalibration of the mean, compared over seeds (issue 30 item 2)", "",
             "Each label-trained network of the run without a recalibration (`none`), and with "
             "each monotone map fitted on the validation set (`isotonic`: E[label | output]; "
             "`quantile`: the output's distribution matched to the labels'), on the test set "
             f"against the labels; mean ± sd over seeds. Low A: label <= {LOW_A:g}; high A: "
             "label > 0.3. The run's own networks use `search.recalibration` of its params. "
             "Table: `recalibration.csv`.", "",
             "| target | method | RMSE | MAE | r | MAE low A | bias high A | recall A > 0.3 "
             "| precision A > 0.3 |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for _, r in table.iterrows():
        lines.append(f"| {r['target']} | {r['method']} | "
                     + " | ".join(mean_sd_text(r, k) for k in keys) + " |")  # fmt: skip
    return [*lines, ""]


def _merger_lines(detection: pd.DataFrame, bias: pd.DataFrame) -> list[str]:
    """The merger-regime section: recall / precision over all SNR_p, and the bias by A bin."""
    if detection.empty:
        return []
    every = detection[detection["SNR_p"] == "all"]
    lines = ["## The merger regime (issue 30)", "",
             "Galaxies above the conventional merger cuts by the reference (the labels, or the "
             "simulator's truth) found by each method: recall / precision (N above by the "
             "reference / by the method). Per SNR_p bin: `merger_detection.csv`; the bias "
             "(method - reference) by bin of the reference A: `merger_bias.csv`.", "",
             "| cut | reference | method | recall | precision | N ref / method |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for _, r in every.iterrows():
        lines.append(f"| A > {r['cut']:g} | {r['reference']} | {r['method']} | "
                     f"{r['recall']:.2f} | {r['precision']:.2f} | {r['n_ref']} / "
                     f"{r['n_method']} |")  # fmt: skip
    wide = bias.pivot_table(index=["reference", "A bin"], columns="method", values="bias",
                            sort=False)  # fmt: skip
    lines += ["", "Bias (method - reference) by bin of the reference A:", "",
              _markdown(wide.reset_index()), ""]  # fmt: skip
    return lines


def real_section(real: pd.DataFrame | None, by_bin: pd.DataFrame | None,
                 test: pd.DataFrame) -> tuple[list[str], pd.DataFrame | None]:  # fmt: skip
    """The "Real galaxies" section (issue 29) from the real suite's tables (``real_galaxies``,
    ``real_by_bin``) and the test suite's ``test_galaxies``: the headline quantities on the real
    stamps with S/N per pixel >= 2.5 beside the same quantities on the simulated test set (the
    truth is its reference there), and the outlier figure. Returns (markdown lines, the
    headline table); no lines when the evaluation ran no real suite."""
    from casnet.evaluation.real import HEADLINE, HEADLINE_ROWS, agreement, real_scores

    if real is None or by_bin is None:
        return [], None
    sim = test.rename(
        columns=lambda c: c.replace("conventional_", "conv_").replace("true_", "ref_")
    )
    rows, n_test = [], 0
    for t in TARGETS:
        head = by_bin[(by_bin["group"] == "headline") & (by_bin["target"] == t)].iloc[0]
        if f"ref_{t}" in sim:
            on_test = real_scores(sim, t)
        else:  # external data: no truth, only the network against the conventional value
            pair = agreement(sim[f"net_{t}"], sim[f"conv_{t}"])
            on_test = {"n": pair["n"], "net_conv_r": pair["r"], "net_conv_slope": pair["slope"]}
        n_test = max(n_test, int(on_test["n"]))
        for quantity, net, conv in HEADLINE_ROWS:
            rows.append(
                {
                    "quantity": f"{symbol(t)} {quantity}",
                    "real: network": head[net],
                    "real: conventional": head[conv] if conv else np.nan,
                    "simulated test: network": on_test.get(net, np.nan),
                    "simulated test: conventional": on_test.get(conv, np.nan) if conv else np.nan,
                }
            )
    table = pd.DataFrame(rows)
    n_real = int(by_bin.loc[by_bin["group"] == "headline", "n"].max())
    galaxies = real["cosmos_ident"] if "cosmos_ident" in real else real["galaxy_id"]
    counts = real["excluded"].replace("", "scored").value_counts()
    lines = [
        "## Real galaxies (issue 29)",
        "",
        f"{galaxies.nunique()} real COSMOS HST galaxies (F814W morphology standing in "
        f"for F160W) rendered as {len(real)} CANDELS F160W stamps, scored by the network and "
        "the conventional measurement against the conventional measurement of the noise-free "
        f"stamp (the reference; on the simulated test set: the truth). Real: the {n_real} "
        f"stamps with {HEADLINE}; simulated: the {n_test} test galaxies. Stamps: "
        + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
        + ". Per S/N bin and visual kind: `real_by_bin.csv`; per stamp: `real_galaxies.csv`.",
        "",
        _markdown(table),
        "",
        "![real_outliers](figures/real_outliers.png)",
        "",
    ]
    return lines, table


def _speed(model: str, root: Path, test: Path, n: int = 200) -> dict[str, float]:
    """Galaxies/s of the registered combined model and of the conventional measurement on the
    same machine (the test set's stamps; the conventional one on as many raw stamps)."""
    from casnet.evaluation.predictor import Predictor
    from casnet.morphology import measure

    images = np.asarray(StampStore(test).array("image")[:n], dtype=np.float32)
    predictor = Predictor(model, root=root)
    predictor.predict(images[:8])  # warm-up
    start = time.perf_counter()
    predictor.predict(images)
    net = len(images) / (time.perf_counter() - start)
    raw = StampStore(root / "data" / "cleaned")
    stamps = np.asarray(raw.array("image")[: min(n, 100)], dtype=np.float64)
    start = time.perf_counter()
    for stamp in stamps:
        measure(stamp)
    conv = len(stamps) / (time.perf_counter() - start)
    return {"network_galaxies_per_s": net, "conventional_galaxies_per_s": conv,
            "speed_up": net / conv}  # fmt: skip


#: the per-seed training scores :func:`seed_table` summarises (the runs' metrics: against what
#: each network learnt, the labels or the truth)
SEED_METRICS = ("final_val_rmse", "test_rmse", "test_mae", "test_pearson_r", "epochs",
                "best_epoch")  # fmt: skip


def mean_sd(values) -> dict[str, float]:
    """``mean`` and sample ``sd`` of the finite values (NaN: none; the sd of one value is NaN:
    one seed has no spread)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()) if v.size else np.nan,
            "sd": float(v.std(ddof=1)) if v.size > 1 else np.nan}  # fmt: skip


def over_seeds(frame: pd.DataFrame, by: list[str], metrics) -> pd.DataFrame:
    """One row per group of ``by``: ``n_seeds``, ``seeds`` (the ``seed`` column, joined) and
    ``<metric>_mean`` / ``<metric>_sd`` (:func:`mean_sd`) of each of ``metrics`` present."""
    rows = []
    for keys, group in frame.groupby(by, sort=False):
        row = dict(zip(by, keys if isinstance(keys, tuple) else (keys,), strict=True))
        row.update({"n_seeds": len(group), "seeds": ", ".join(str(s) for s in group["seed"])})
        for k in metrics:
            if k in group:
                m = mean_sd(group[k])
                row[f"{k}_mean"], row[f"{k}_sd"] = m["mean"], m["sd"]
        rows.append(row)
    return pd.DataFrame(rows)


def mean_sd_text(row, key: str, digits: int = 4) -> str:
    """``mean ± sd`` of ``key`` in a row of :func:`over_seeds` (``-`` without a mean; the mean
    alone for one seed)."""
    m, sd = row.get(f"{key}_mean", np.nan), row.get(f"{key}_sd", np.nan)
    if not np.isfinite(m):
        return "-"
    return f"{m:.{digits}f}" + (f" ± {sd:.{digits}f}" if np.isfinite(sd) else "")


def seed_table(trainings: dict[str, dict]) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each network's training scores (issue 30: one
    seed is an anecdote).

    Parameters
    ----------
    trainings : dict
        Step name -> ``{"run_id", "params", "metrics"}`` of the run's trainings (the params hold
        ``target``, ``labels`` and ``seed``).

    Returns
    -------
    DataFrame
        One row per (target, labels): ``n_seeds``, ``seeds``, ``best_seed`` (the lowest
        validation RMSE: the registry's champion for the labels) and, per metric of
        :data:`SEED_METRICS`, ``<metric>_mean`` and ``<metric>_sd`` (sample sd; NaN for one
        seed).
    """
    rows: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    for record in trainings.values():
        p = record.get("params", {})
        key = (p.get("target", "?"), p.get("labels", "label"))
        rows.setdefault(key, []).append((str(p.get("seed", "?")), record.get("metrics", {})))
    out = []
    for (target, labels), runs in sorted(rows.items()):
        val = np.array([m.get("final_val_rmse", np.nan) for _, m in runs], dtype=float)
        best = runs[int(np.nanargmin(val))][0] if np.isfinite(val).any() else "-"
        row: dict = {"target": target, "labels": labels, "n_seeds": len(runs),
                     "seeds": ", ".join(s for s, _ in runs), "best_seed": best}  # fmt: skip
        for k in SEED_METRICS:
            m = mean_sd([metrics.get(k, np.nan) for _, metrics in runs])
            row[f"{k}_mean"], row[f"{k}_sd"] = m["mean"], m["sd"]
        out.append(row)
    return pd.DataFrame(out)


def chosen_trainings(trainings: dict[str, dict], done: dict) -> dict[str, dict]:
    """The trainings on the training set chosen for their target (``choose-<t>`` of the run's
    steps; issue 30): a first-seed candidate on the other set is left out of the seed
    statistics. Trainings of a run without a choice all count."""
    chosen = {v["target"]: v["train_set"] for k, v in done.items()
              if k.startswith("choose-") and isinstance(v, dict) and "train_set" in v}  # fmt: skip
    return {name: record for name, record in trainings.items()
            if record.get("train_set") is None
            or chosen.get(record.get("params", {}).get("target"), record["train_set"])
            == record["train_set"]}  # fmt: skip


def train_set_lines(done: dict) -> list[str]:
    """The section on the training set (augmented or not) each target's networks trained on."""
    choices = [v for k, v in done.items() if k.startswith("choose-") and isinstance(v, dict)]
    if not choices:
        return []
    lines = ["## Training set, decided by validation (issue 30)", "",
             "Each target's first-seed network trained on each candidate set "
             "(`science.train_sets`); the set with the lower validation RMSE trained the other "
             "seeds and the truth-trained networks.", "",
             "| target | validation RMSE per set | chosen |", "|---|---|---|"]  # fmt: skip
    for c in choices:
        val = ", ".join(f"{name} {v:.4f}" for name, v in c["val_rmse"].items())
        lines.append(f"| {c['target']} | {val} | {c['train_set']} |")
    return [*lines, ""]


def _seed_lines(table: pd.DataFrame) -> list[str]:
    """The seed section: mean +- sd per network."""
    if table.empty:
        return []

    lines = ["## Over seeds (issue 30)", "",
             "Each network trained once per seed (`science.seeds`), the same architecture; mean "
             "± sd over the seeds of its scores against what it learnt (labels or truth); the "
             "registered champion is the seed with the best validation RMSE. Per run: "
             "`metrics.json` (`trainings`).", "",
             "| target | learnt | seeds | best (val) | val RMSE | test RMSE | test MAE | test r "
             "| epochs | best epoch |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for _, r in table.iterrows():
        cells = [
            mean_sd_text(r, k, d)
            for k, d in (
                ("final_val_rmse", 4),
                ("test_rmse", 4),
                ("test_mae", 4),
                ("test_pearson_r", 3),
                ("epochs", 1),
                ("best_epoch", 1),
            )
        ]
        lines.append(f"| {r['target']} | {r['labels']} | {r['seeds']} | {r['best_seed']} | "
                     + " | ".join(cells) + " |")  # fmt: skip
    return [*lines, ""]


#: issue 30: the truth-trained networks must beat the conventional measurement against the
#: truth at SNR_p 2-3 and 3-5, by more than the seed-to-seed spread
LOW_SNR_BINS = ((2.0, 3.0), (3.0, 5.0))


def low_snr_over_seeds(table: pd.DataFrame, per_seed: dict[str, dict[str, np.ndarray]],
                       bins=LOW_SNR_BINS) -> pd.DataFrame:  # fmt: skip
    """RMSE against the truth in the low-SNR_p bins: each truth-trained seed's network (mean and
    sample sd over seeds) and the conventional measurement, and whether the networks beat it by
    more than the spread (conventional RMSE - mean > sd).

    Parameters
    ----------
    table : DataFrame
        The report's test table (``snr_p``, ``true_<t>``, ``conventional_<t>``).
    per_seed : dict
        Target -> run id -> the network's predictions, in the table's order.
    """
    rows = []
    snr = table["snr_p"].to_numpy(float)
    for t, seeds in per_seed.items():
        truth = table[f"true_{t}"].to_numpy(float)
        conv = table[f"conventional_{t}"].to_numpy(float)
        for lo, hi in bins:
            sel = (snr > lo) & (snr <= hi) & np.isfinite(truth)
            ok = sel & np.isfinite(conv)
            conv_rmse = float(np.sqrt(np.mean((conv[ok] - truth[ok]) ** 2))) if ok.any() else np.nan
            rmse = []
            for pred in seeds.values():
                good = sel & np.isfinite(pred)
                rmse.append(float(np.sqrt(np.mean((pred[good] - truth[good]) ** 2)))
                            if good.any() else np.nan)  # fmt: skip
            v = np.array(rmse, dtype=float)
            mean, sd = mean_sd(v).values()
            rows.append({"quantity": t, "SNR_p": f"{lo:g}-{hi:g}", "n": int(sel.sum()),
                         "n_seeds": int(np.isfinite(v).sum()), "truthnet_rmse_mean": mean,
                         "truthnet_rmse_sd": sd, "conventional_rmse": conv_rmse,
                         "beats_by_more_than_spread": bool(np.isfinite(sd)
                                                           and conv_rmse - mean > sd)})  # fmt: skip
    return pd.DataFrame(rows)


def _low_snr_lines(frame: pd.DataFrame) -> list[str]:
    if frame.empty:
        return []
    lines = ["## Truth-trained networks at low SNR_p, over seeds (issue 30)", "",
             "RMSE against the truth of every seed's truth-trained network (mean ± sd) and of the "
             "conventional measurement, on the test galaxies of each bin; the target: below the "
             "conventional by more than the seed-to-seed spread. Table: `truth_low_snr.csv`.", "",
             "| quantity | SNR_p | N | seeds | truth-trained network | conventional | beats it by "
             "more than the spread |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in frame.itertuples():
        sd = f" ± {r.truthnet_rmse_sd:.4f}" if np.isfinite(r.truthnet_rmse_sd) else ""
        lines.append(f"| {r.quantity} | {r.SNR_p} | {r.n} | {r.n_seeds} | "
                     f"{r.truthnet_rmse_mean:.4f}{sd} | {r.conventional_rmse:.4f} | "
                     f"{'yes' if r.beats_by_more_than_spread else 'no'} |")  # fmt: skip
    return [*lines, ""]


#: issue 30's targets on the simulated test set, as the issue words them: name -> (what is
#: compared, the bound, ">=" or "<="); the coverage targets are in the pretrained section
TARGETS_30 = {
    "C MAE vs labels (mean over seeds)": ("concentration label test_mae_mean", 0.11, "<="),
    "C r vs labels (mean over seeds)": ("concentration label test_pearson_r_mean", 0.92, ">="),
    "A MAE vs labels (mean over seeds)": ("asymmetry label test_mae_mean", 0.040, "<="),
    "A r vs labels (mean over seeds)": ("asymmetry label test_pearson_r_mean", 0.86, ">="),
    "A > 0.3 recall vs labels (champion)": ("recall", 0.75, ">="),
    "A > 0.3 precision vs labels (champion)": ("precision", 0.70, ">="),
    "bias on A_label > 0.3 (champion)": ("bias", -0.05, ">="),
}


def targets_table(seeds: pd.DataFrame, detection: pd.DataFrame, table: pd.DataFrame,
                  low_snr: pd.DataFrame) -> pd.DataFrame:  # fmt: skip
    """Issue 30's targets on the simulated test set beside what the run measured, and whether
    each is met (:data:`TARGETS_30`; the truth-trained networks: below the conventional
    measurement at SNR_p 2-3 and 3-5, on the mean over seeds and by more than the spread)."""
    rows = []

    def add(name, value, bound, op, sd=np.nan):
        met = (value <= bound if op == "<=" else value >= bound) if np.isfinite(value) else None
        rows.append({"target": name, "bound": f"{op} {bound:g}", "measured": value,
                     "sd over seeds": sd, "met": met})  # fmt: skip

    a_label = detection[(detection["cut"] == MERGER_CUTS[0]) & (detection["reference"] == "label")
                        & (detection["SNR_p"] == "all")
                        & (detection["method"] == "network (labels)")]  # fmt: skip
    label, pred = (table[c].to_numpy(float) for c in ("label_asymmetry", "pred_asymmetry"))
    high = np.isfinite(pred) & (label > MERGER_CUTS[0])
    for name, (what, bound, op) in TARGETS_30.items():
        if what in ("recall", "precision"):
            value = float(a_label[what].iloc[0]) if len(a_label) else np.nan
            add(name, value, bound, op)
        elif what == "bias":
            value = float(np.mean(pred[high] - label[high])) if high.any() else np.nan
            add(name, value, bound, op)
        else:
            target, labels, column = what.split()
            row = seeds[(seeds["target"] == target) & (seeds["labels"] == labels)]
            value = float(row[column].iloc[0]) if len(row) else np.nan
            sd = float(row[column.replace("_mean", "_sd")].iloc[0]) if len(row) else np.nan
            add(name, value, bound, op, sd)
    for r in low_snr.itertuples():
        name = f"truth-trained {r.quantity} RMSE vs truth at SNR_p {r.SNR_p}, below conventional"
        rows.append({"target": name, "bound": f"< {r.conventional_rmse:.4f} by > sd",
                     "measured": r.truthnet_rmse_mean, "sd over seeds": r.truthnet_rmse_sd,
                     "met": bool(r.beats_by_more_than_spread)})  # fmt: skip
    return pd.DataFrame(rows)


def _targets_lines(table: pd.DataFrame) -> list[str]:
    if table.empty:
        return []
    lines = [
        "## Issue 30's targets on the simulated test set",
        "",
        "Each target as the issue words it, what this run measured (the mean over seeds "
        "where it says so, else the champion) and whether it is met. The coverage targets "
        "of the shipped default are in its section below. Recomputed from `seeds.csv`, "
        "`merger_detection.csv`, `test_galaxies.csv` and `truth_low_snr.csv`.",
        "",
        "| target | bound | measured | sd over seeds | met |",
        "|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        sd = f"{r[4]:.4f}" if np.isfinite(r[4]) else "-"
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.target} | {r.bound} | {r.measured:.4f} | {sd} | {met} |")
    return [*lines, ""]


def _truth_seed_predictions(done: dict, root: Path, test: Path) -> dict:
    """Target -> run id -> the predictions on the test store of each truth-trained seed."""
    from casnet.networks.inference import predict_store
    from casnet.networks.mlmodel import load_logged_network
    from casnet.science.defaults import truth_runs

    out: dict[str, dict[str, np.ndarray]] = {}
    with use_store(root):
        for t, runs in truth_runs(done).items():
            for run_id in runs:
                net = load_logged_network(f"runs:/{run_id}/model")
                out.setdefault(t, {})[run_id] = predict_store(net, test, t, labels="truth")[1]
    return out


def _truth_networks(done: dict, root: Path) -> dict:
    """The networks trained on the truth (``--labels truth``, not registered), by target: of
    several seeds, the one with the best validation RMSE (as the champion is chosen;
    :func:`casnet.science.defaults.truth_run_ids`)."""
    from casnet.networks.mlmodel import load_logged_network
    from casnet.science.defaults import truth_run_ids

    out = {}
    with use_store(root):
        for t, run_id in truth_run_ids(done, root).items():
            out[t] = load_logged_network(f"runs:/{run_id}/model")
    return out


def calibration_section(root: Path, test: Path, truth_networks: dict, figures: Path,
                 passes: int = 30) -> tuple[list[str], dict, pd.DataFrame | None]:  # fmt: skip
    """The calibration section (issue 18): each uncertainty method of the registered networks
    (and of the truth-trained ones) scored on the test set, per SNR_p bin in ``calibration.csv``,
    with reliability diagrams. Returns (markdown lines, metrics, the per-bin table)."""
    from casnet.bench.uncertainty import METHODS, compare_uncertainties, method_table
    from casnet.evaluation.calibration import reliability_figure
    from casnet.evaluation.test_set import SNR_EDGES
    from casnet.networks.registry import load

    champion = load("models:/casnet@champion", root).unwrap_python_model().networks
    if not any(net.output_shape[-1] == 2 for net in champion.values()):
        return ["The registered networks have point heads: no per-galaxy uncertainty to "
                "calibrate (`search.head: gaussian` gives them one).", ""], {}, None  # fmt: skip
    lines, metrics, frames = [], {}, []
    for name, nets in (("labels", champion), ("truth", truth_networks)):
        if not nets:
            continue
        table = method_table(nets, test, passes=passes)
        frame, score = compare_uncertainties(table, snr_edges=SNR_EDGES)
        frame.insert(0, "networks trained on", name)
        frames.append(frame)
        for method, value in score.items():
            key = next(k for k, v in METHODS.items() if v == method)
            metrics[f"calibration_score_{name}_{key}"] = float(value)
        overall = frame[frame["snr"] == "all"]
        lines += [f"### Networks trained on the {name}", "",
                  _markdown(overall.drop(columns=["networks trained on", "snr"])), "",
                  "Calibration score (mean over targets and references of |cov_1 - 0.683| + "
                  "|cov_2 - 0.954|; 0 is perfect): "
                  + ", ".join(f"{m} {v:.3f}" for m, v in score.items())
                  + f". Better calibrated: **{score.index[0]}**.", ""]  # fmt: skip
        for ref in ("true", "label"):
            label = "truth" if ref == "true" else "label"
            reliability_figure(table, METHODS, figures / f"reliability_{name}net_vs_{label}.png",
                               reference=ref, skip=[("conventional", "label")])  # fmt: skip
    return lines, metrics, pd.concat(frames, ignore_index=True)


def _markdown(frame: pd.DataFrame) -> str:
    """``frame`` as a markdown table, missing values blank (tabulate prints NaN as "nan")."""
    return (
        frame.astype(object)
        .where(frame.notna(), None)
        .to_markdown(index=False, floatfmt=".4g", missingval="")
    )


def write_report(params, project: Path, root: Path, done: dict) -> Path:
    """Write ``params.science.report`` from the run in ``root``; returns the folder."""
    from mlflow import MlflowClient

    out = project / params.science.report
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri(root), registry_uri=tracking_uri(root))
    eval_id = done["evaluate"]["run_id"]
    run = client.get_run(eval_id)
    metrics = dict(run.data.metrics)
    test = root / TEST
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(eval_id, "", tmp))
        for png in sorted(local.glob("figures/*/*.png")):
            shutil.copy(png, figures / png.name)
        summary = (local / "summary.md").read_text()
        evaluated = pd.read_parquet(local / "tables" / "test" / "test_galaxies.parquet")
        real_tables = {name: pd.read_parquet(path) if path.exists() else None
                       for name in ("real_galaxies", "real_by_bin")
                       for path in [local / "tables" / "real" / f"{name}.parquet"]}  # fmt: skip
    from casnet.networks.inference import predict_store

    truth_networks = _truth_networks(done, root)
    truth_nets, truth_sigmas = {}, {}
    for t, net in truth_networks.items():
        _, truth_nets[t], truth_sigmas[t] = predict_store(net, test, t, labels="truth",
                                                          with_sigma=True)  # fmt: skip
    table = galaxy_table(evaluated, truth_nets, truth_sigmas)
    table.to_csv(out / "test_galaxies.csv", index=False, float_format="%.6g")
    reasons = {t: degenerate_reason(table[f"label_{t}"], table[f"pred_{t}"]) for t in TARGETS}
    degenerate = {t: why for t, why in reasons.items() if why}
    for t, pred in truth_nets.items():
        ok = np.isfinite(table[f"true_{t}"]) & np.isfinite(pred)
        for k, v in scores(table.loc[ok, f"true_{t}"], pred[ok]).items():
            metrics[f"test_{t}_truthnet_vs_truth_{k}"] = v
    real_lines, _ = real_section(real_tables["real_galaxies"], real_tables["real_by_bin"],
                                 evaluated)  # fmt: skip
    for name, frame in real_tables.items():
        if frame is not None:
            frame.to_csv(out / f"{name}.csv", index=False, float_format="%.6g")
    by_snr = _by_snr(table)
    by_snr.to_csv(out / "test_by_snr.csv", index=False, float_format="%.6g")
    low_snr = low_snr_over_seeds(table, _truth_seed_predictions(done, root, test))
    low_snr.to_csv(out / "truth_low_snr.csv", index=False, float_format="%.6g")
    detection, bias = merger_regime(table)
    detection.to_csv(out / "merger_detection.csv", index=False, float_format="%.6g")
    bias.to_csv(out / "merger_bias.csv", index=False, float_format="%.6g")
    speed = _speed("models:/casnet@champion", root, test)
    calibration_lines, calibration, frame = calibration_section(root, test, truth_networks, figures)
    if frame is not None:
        frame.to_csv(out / "calibration.csv", index=False, float_format="%.6g")
    metrics.update(calibration)
    trainings = {}
    for name, record in done.items():
        if name.startswith("train-") and isinstance(record, dict) and record.get("run_id"):
            r = client.get_run(record["run_id"])
            trainings[name] = {"run_id": record["run_id"], "params": dict(r.data.params),
                               "metrics": dict(r.data.metrics),
                               "train_set": record.get("train_set")}  # fmt: skip
    seeds = seed_table(chosen_trainings(trainings, done))
    seeds.to_csv(out / "seeds.csv", index=False, float_format="%.6g")
    recalibration = recalibration_table(
        _recalibration_runs(chosen_trainings(trainings, done), root, root / VAL, test)
    )
    recalibration.to_csv(out / "recalibration.csv", index=False, float_format="%.6g")
    lock = yaml.safe_load((root / "dvc.lock").read_text()) if (root / "dvc.lock").exists() else {}
    data_hashes = {o["path"]: o.get("md5") for st in (lock.get("stages") or {}).values()
                   for o in st.get("outs", [])}  # fmt: skip
    record = {
        # its own outputs (this folder, the shipped models) do not make the commit "-dirty"
        "git_commit": git_commit(project, exclude=(params.science.report, PACKAGE_DIR)),
        "evaluation_run": eval_id,
        "params": yaml.safe_load((root / "params.yaml").read_text()),
        "data_md5": data_hashes,
        "steps": {k: v for k, v in done.items() if k != "params_hash"},
        "params_hash": done.get("params_hash"),
        "metrics": metrics,
        "trainings": trainings,
        "speed": speed,
        "degenerate": degenerate,
    }
    (out / "metrics.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
    paper = paper_table(metrics, degenerate)
    seconds = sum(v.get("seconds", 0) for k, v in done.items() if isinstance(v, dict))
    lines = [
        "# Science run (issue 17)",
        "",
        f"git commit `{record['git_commit']}`, evaluation run `{eval_id}` (store "
        f"`{params.science.root}/mlflow.db`), params `{params.science.root}/params.yaml` "
        f"(hash {done.get('params_hash')}); {len(table)} test galaxies; compute "
        f"{seconds / 3600:.2f} h on this machine. Regenerate: `make science`.",
        "",
        *[
            f"**The {t} network is degenerate (not a result)**: {why}."
            for t, why in degenerate.items()
        ],
        "",
        "## Beside the paper",
        "",
        _markdown(paper),
        "",
        f"Speed on this machine: combined model {speed['network_galaxies_per_s']:.0f} galaxies/s, "
        f"conventional measurement {speed['conventional_galaxies_per_s']:.1f} galaxies/s "
        f"({speed['speed_up']:.0f}x).",
        "",
        *_targets_lines(targets_table(seeds, detection, table, low_snr)),
        *train_set_lines(done),
        *_seed_lines(seeds),
        *_low_snr_lines(low_snr),
        *_merger_lines(detection, bias),
        *_recalibration_lines(recalibration),
        *real_lines,
        "## Calibration of the per-galaxy uncertainties (issue 18)",
        "",
        "Observed coverage of each sigma on the test set: the fraction of galaxies within 1 and 2 "
        "sigma of the reference (calibrated: 0.683 and 0.954; issue 18 accepts 0.60-0.76 and "
        "0.90-0.98). *Gaussian head*: the sigma the network outputs; *MC dropout*: the spread of "
        "30 passes with dropout on; *both*: in quadrature. The conventional errors are scored "
        "against the truth only (the labels are that measurement). Per SNR_p bin: "
        "`calibration.csv`; reliability diagrams: `figures/reliability_*.png`.",
        "",
        *calibration_lines,
        "## Against the truth, by SNR_p (test set)",
        "",
        _markdown(by_snr),
        "",
        "## The evaluation's summary",
        "",
        summary,
        "",
        "## Steps",
        "",
        pd.DataFrame([{"step": k, **v} for k, v in record["steps"].items()]).to_markdown(
            index=False
        ),
        "",
        "## Figures",
        "",
        *[f"![{p.stem}](figures/{p.name})" for p in sorted(figures.glob("*.png"))],
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    return out
