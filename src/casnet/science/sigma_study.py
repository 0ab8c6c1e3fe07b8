"""Should a Gaussian head's sigma train the trunk? The seed study of issue 30 item 3.

A Gaussian head's loss (:func:`casnet.networks.uncertainty.gaussian_loss`) trains the mean by
its RMSE and the sigma by the likelihood with the mean held fixed; with ``sigma_gradient:
shared`` the likelihood's gradient still reaches every layer below the output (the features the
mean is read from), with ``detached`` only the sigma's own weights. Which gives truth-trained
networks that measure C and A better, and sigmas that cover the truth? One seed cannot say
(issue 30: the seed-to-seed spread of run 2 was as large as the effects looked for), so after a
finished science run :func:`run_sigma_study` trains the truth-trained networks once more per seed
of ``science.seeds``, identical but for ``--sigma-gradient detached`` (same search, training
set, budget and seeds), and :func:`sigma_table` sets the two side by side, mean and sample
standard deviation over seeds: validation RMSE, RMSE against the truth on the test set overall
and at SNR_p 2-3 and 3-5 (where item 3 asks the networks to beat the conventional
measurement), and the sigma's coverage of the truth. Its verdict says "better" only where the
difference of the means exceeds the larger of the two spreads.

The study's trainings are steps of the run's ``steps.json`` named ``study-sigma-<t>-seed<S>``
(resumable, voided with the run's params like its other steps; not ``train-...``, so the run's
own seed tables and shipped models never see them). ``casnet science --sigma-study``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from casnet.core.errors import CasnetError
from casnet.core.layout import TARGETS, TEST

# item 3's bins, as the report's low-SNR table; the aggregation over seeds, as the report's
from casnet.science.report import LOW_SNR_BINS, mean_sd_text, over_seeds

__all__ = ["STUDY_FILE", "run_sigma_study", "sigma_table", "study_steps", "verdicts"]

#: the study's files in the report folder (``<STUDY_FILE>.csv`` and ``.md``)
STUDY_FILE = "sigma_gradient"
#: what is compared, and whether lower is better (None: closer to the Gaussian value)
STUDY_METRICS = {"val_rmse": True, "rmse": True, "rmse_snr_2_3": True, "rmse_snr_3_5": True,
                 "coverage_1sigma": None, "coverage_2sigma": None}  # fmt: skip
_GAUSSIAN = {"coverage_1sigma": 0.6827, "coverage_2sigma": 0.9545}


def study_steps(params) -> list:
    """The study's trainings: per target and seed, the run's truth-trained training with
    ``--sigma-gradient detached`` (its ``--train`` store and ``--from-tune`` search filled in by
    :func:`run_sigma_study` from the run's records, as the run fills its own)."""
    from casnet.science.run import Step, plan

    steps = []
    by_name = {s.name: s for s in plan(params)}
    for t in TARGETS:
        for seed in params.science.seeds:
            base = by_name.get(f"train-{t}-truth-seed{seed}")
            if base is None:
                raise CasnetError("science --sigma-study: the run trains no truth networks "
                                  "(science.label_sources has no 'truth')")  # fmt: skip
            steps.append(Step(f"study-sigma-{t}-seed{seed}",
                              (*base.command, "--sigma-gradient", "detached"),
                              run_id=base.run_id, extra=dict(base.extra)))  # fmt: skip
    return steps


def _scores(truth: np.ndarray, snr: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> dict:
    """RMSE against the truth overall and in :data:`LOW_SNR_BINS`, and the coverage of the
    truth by mu +- 1 and 2 sigma."""
    ok = np.isfinite(truth) & np.isfinite(mu)
    out = {"rmse": float(np.sqrt(np.mean((mu[ok] - truth[ok]) ** 2))) if ok.any() else np.nan}
    for lo, hi in LOW_SNR_BINS:
        sel = ok & (snr > lo) & (snr <= hi)
        out[f"rmse_snr_{lo:g}_{hi:g}"] = (float(np.sqrt(np.mean((mu[sel] - truth[sel]) ** 2)))
                                          if sel.any() else np.nan)  # fmt: skip
    good = ok & np.isfinite(sigma) & (sigma > 0)
    z = np.abs(mu[good] - truth[good]) / sigma[good]
    for k in (1, 2):
        out[f"coverage_{k}sigma"] = float(np.mean(z <= k)) if good.any() else np.nan
    return out


def sigma_table(runs: list[dict]) -> pd.DataFrame:
    """Mean and sample standard deviation over seeds per (target, sigma_gradient).

    Parameters
    ----------
    runs : list of dict
        One per trained network: ``target``, ``sigma_gradient``, ``seed``, and the values of
        :data:`STUDY_METRICS` (``val_rmse`` and those of :func:`_scores`).

    Returns
    -------
    DataFrame
        One row per (target, sigma_gradient): ``n_seeds``, ``seeds``, ``<metric>_mean`` and
        ``<metric>_sd`` (NaN for one seed).
    """
    frame = pd.DataFrame(runs).sort_values(["target", "sigma_gradient"], kind="stable")
    return over_seeds(frame, ["target", "sigma_gradient"], STUDY_METRICS)


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """Per target and metric: which of shared and detached is better, and whether by more than
    the larger of the two seed spreads (else "within the spread")."""
    rows = []
    for t, group in table.groupby("target", sort=True):
        by = {r["sigma_gradient"]: r for _, r in group.iterrows()}
        if not {"shared", "detached"} <= set(by):
            continue
        for k, lower in STUDY_METRICS.items():
            a, b = by["shared"], by["detached"]
            if lower is None:  # coverage: the distance from the Gaussian value
                da, db = (abs(x[f"{k}_mean"] - _GAUSSIAN[k]) for x in (a, b))
            else:
                da, db = a[f"{k}_mean"], b[f"{k}_mean"]
            spread = np.nanmax([a[f"{k}_sd"], b[f"{k}_sd"], 0.0])
            if not (np.isfinite(da) and np.isfinite(db)):
                verdict = "-"
            elif abs(da - db) <= spread:
                verdict = "within the spread"
            else:
                verdict = "shared better" if da < db else "detached better"
            rows.append({"target": t, "metric": k, "shared": a[f"{k}_mean"],
                         "detached": b[f"{k}_mean"], "spread": spread,
                         "verdict": verdict})  # fmt: skip
    return pd.DataFrame(rows)


def _markdown(table: pd.DataFrame, verdict: pd.DataFrame, commit: str) -> str:
    lines = ["# Sigma on the trunk or off it: truth-trained networks over seeds (issue 30 item 3)",
             "", f"Written by `casnet science --sigma-study` (git commit {commit}) from the "
             "science run's truth-trained networks (`shared`: the run's own) and the same "
             "trainings with `--sigma-gradient detached`; mean ± sample sd over seeds, on the "
             "run's test set against the simulator's noise-free truth "
             "(`casnet.science.sigma_study`).", "",
             "| target | sigma | seeds | val RMSE | RMSE vs truth | SNR_p 2-3 | SNR_p 3-5 "
             "| 1σ coverage | 2σ coverage |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for _, r in table.iterrows():
        lines.append(f"| {r['target']} | {r['sigma_gradient']} | {r['seeds']} | "
                     + " | ".join(mean_sd_text(r, k) for k in STUDY_METRICS) + " |")  # fmt: skip
    lines += ["", "Verdict: a difference of the means larger than the larger seed spread "
              "(coverage: the distance from the Gaussian 0.683 / 0.954).", "",
              "| target | metric | shared | detached | spread | verdict |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for _, r in verdict.iterrows():
        lines.append(f"| {r['target']} | {r['metric']} | {r['shared']:.4f} | "
                     f"{r['detached']:.4f} | {r['spread']:.4f} | {r['verdict']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _network_runs(root: Path, done: dict, steps: dict[str, str]) -> list[dict]:
    """Score each network of ``steps`` (step name -> sigma_gradient) on the run's test set."""
    from mlflow import MlflowClient

    from casnet.core.tracking import tracking_uri, use_store
    from casnet.data.io.store import StampStore
    from casnet.networks.inference import predict_store
    from casnet.networks.mlmodel import load_logged_network

    test = root / TEST
    snr = StampStore(test).catalog["snr_p"].to_numpy(float)
    client = MlflowClient(tracking_uri(root))
    out = []
    with use_store(root):
        for name, mode in steps.items():
            run_id = (done.get(name) or {}).get("run_id")
            if not run_id:
                continue
            run = client.get_run(run_id)
            target, seed = run.data.params["target"], run.data.params.get("seed", "?")
            net = load_logged_network(f"runs:/{run_id}/model")
            truth, mu, sigma = predict_store(net, test, target, labels="truth", with_sigma=True)
            out.append({"target": target, "sigma_gradient": mode, "seed": seed,
                        "run_id": run_id,
                        "val_rmse": run.data.metrics.get("final_val_rmse", np.nan),
                        **_scores(truth, snr, mu, sigma)})  # fmt: skip
    return out


def run_sigma_study(params, project: Path) -> Path:
    """Train the study's networks in the finished run's folder (resumable) and write
    ``<science.report>/sigma_gradient.{csv,md}``; returns the markdown's path.

    Raises
    ------
    CasnetError
        Before the run's truth-trained networks exist (run ``casnet science`` first).
    """
    from casnet.core.tracking import git_commit
    from casnet.science.run import (
        LOG_FILE,
        STEPS_FILE,
        execute,
        load_steps,
        prepare,
        step_environment,
    )

    root = prepare(params, project)
    done = load_steps(root)
    shared = {f"train-{t}-truth-seed{s}": "shared" for t in TARGETS for s in params.science.seeds}
    if not all((done.get(n) or {}).get("run_id") for n in shared):
        raise CasnetError(f"science --sigma-study: the run in {root} has not trained its "
                          "truth networks yet (run casnet science first)")  # fmt: skip
    env = step_environment(root)
    study = study_steps(params)
    with open(root / LOG_FILE, "a") as log_file:
        for step in study:
            if (done.get(step.name) or {}).get("run_id"):
                print(f"science: {step.name} done ({done[step.name]['finished']}), skipped")
                continue
            done[step.name] = execute(step, params, root, env, done, log_file)
            (root / STEPS_FILE).write_text(json.dumps(done, indent=2) + "\n")
    detached = {s.name: "detached" for s in study}
    table = sigma_table(_network_runs(root, done, {**shared, **detached}))
    verdict = verdicts(table)
    out = project / params.science.report
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{STUDY_FILE}.csv", index=False, float_format="%.6g")
    md = out / f"{STUDY_FILE}.md"
    md.write_text(_markdown(table, verdict, git_commit(project, exclude=(out,))))
    print(f"science: the sigma-gradient study is in {md}")
    return md
