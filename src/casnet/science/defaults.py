"""The science run's two pretrained defaults (issue 30 item 4): ``pretrained`` (networks that
learnt the conventional labels, the paper's) and ``pretrained-truth`` (networks that learnt the
simulator's noise-free C and A), each shipped with a model card, and the default chosen by the
real-galaxy suite.

The label-trained model is the run's ``casnet@champion``. The truth-trained networks are not
registered by their trainings (the registry's ``casnet`` is the paper's model); the best
validation seed of each is registered here as ``casnet-<target>-truth`` and wrapped as the
combined ``casnet-truth`` (cleaning as the training data were cleaned, with its own
out-of-distribution fit on the validation store), exactly as the champion is.

Both are scored on the simulated test set (from the report's ``test_galaxies.csv``) and on the
real suite (:func:`casnet.evaluation.real.real_suite`, the same rendered stamps for both). A
sigma "covers its reference" when about 68% (95%) of the galaxies lie within 1 (2) sigma of what
the network learnt: the conventional measurement of the stamp for ``pretrained``, the noise-free
value for ``pretrained-truth`` (on the real suite: the conventional measurement of the noise-free
stamp). The default is the model closer to the noise-free reference on the real galaxies (the
mean over C and A of its RMSE over the conventional measurement's on the headline stamps): what
an astronomer wants of a real galaxy is its C and A, not the noise of one exposure.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from casnet.core.calibration import coverage
from casnet.core.layout import ERR, NETWORK_MODELS, TARGETS, VAL
from casnet.core.scores import scores
from casnet.core.tracking import tracking_uri, use_store

__all__ = [
    "KINDS",
    "TRUTH_COMBINED",
    "TRUTH_NETWORKS",
    "choose_default",
    "model_card",
    "provenance_info",
    "real_scores",
    "register_truth",
    "ship",
    "sim_scores",
    "truth_run_ids",
    "truth_runs",
]

#: shipped name -> what its networks learnt (``--labels`` of their trainings)
KINDS = {"pretrained": "label", "pretrained-truth": "truth"}
#: the registered names of the truth-trained networks and of their combined model
TRUTH_NETWORKS = {t: f"{NETWORK_MODELS[t]}-truth" for t in TARGETS}
TRUTH_COMBINED = "casnet-truth"
#: what each kind's sigma is the expected distance from (the model cards say it)
MEANING = {
    "label": "casnet's conventional measurement of the same stamp (the labels: noise included)",
    "truth": "the galaxy's noise-free C and A (the simulator's idealised values)",
}
LEARNT = {
    "label": "casnet's conventional C and A of the noisy stamps (the paper's labels, "
    "MORFOMETRYKA's role)",
    "truth": "the simulator's idealised C and A: the conventional measurement of the "
    "noise-free, PSF-convolved galaxy",
}


def truth_runs(done: dict) -> dict[str, list[str]]:
    """Target -> the run ids of its truth-trained networks, one per seed (the steps
    ``train-<target>-truth-seed<S>``, or ``train-<target>-truth`` of a run before issue 30);
    targets without one are left out."""
    out = {}
    for t in TARGETS:
        names = [n for n in done if n == f"train-{t}-truth"
                 or n.startswith(f"train-{t}-truth-seed")]  # fmt: skip
        runs = [done[n]["run_id"] for n in names
                if isinstance(done[n], dict) and done[n].get("run_id")]  # fmt: skip
        if runs:
            out[t] = runs
    return out


def truth_run_ids(done: dict, root: Path) -> dict[str, str]:
    """Target -> the run id of its truth-trained network with the best validation RMSE
    (:func:`truth_runs`)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri(root))
    out = {}
    for t, runs in truth_runs(done).items():
        if runs:
            val = [client.get_run(r).data.metrics.get("final_val_rmse", np.inf) for r in runs]
            out[t] = runs[int(np.argmin(val))]
    return out


def register_truth(root: Path, done: dict, clean) -> str:
    """Register the best truth-trained networks and ``casnet-truth`` wrapping them (champion);
    returns the combined version. A version already made from the same runs is reused."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from casnet.core.errors import CasnetError
    from casnet.networks.registry import register_combined

    runs = truth_run_ids(done, root)
    if set(runs) != set(TARGETS):
        raise CasnetError(f"science: no truth-trained network for {set(TARGETS) - set(runs)}")
    key = json.dumps(runs, sort_keys=True)
    client = MlflowClient(tracking_uri(root), registry_uri=tracking_uri(root))
    try:
        champion = client.get_model_version_by_alias(TRUTH_COMBINED, "champion")
        if champion.tags.get("casnet.truth_runs") == key:
            return str(champion.version)
    except MlflowException:
        pass
    versions = {}
    with use_store(root):
        for t, run_id in runs.items():
            version = str(mlflow.register_model(_logged_model(client, run_id),
                                                TRUTH_NETWORKS[t]).version)  # fmt: skip
            versions[t] = version
            client.update_model_version(
                TRUTH_NETWORKS[t], version,
                description=f"The {t} network trained on the truth (run {run_id}: the best "
                "validation seed of the science run).",
            )  # fmt: skip
            client.set_registered_model_alias(TRUTH_NETWORKS[t], "champion", version)
    version = register_combined(versions, root=root, clean=clean, ood_store=root / VAL,
                                networks=TRUTH_NETWORKS, name=TRUTH_COMBINED)  # fmt: skip
    client.set_model_version_tag(TRUTH_COMBINED, version, "casnet.truth_runs", key)
    return version


def _logged_model(client, run_id: str) -> str:
    """The ``models:/m-...`` URI of the network a training run logged (MLflow 3 logged models;
    ``runs:/<id>/model`` resolves too, with a warning on the console)."""
    run = client.get_run(run_id)
    found = client.search_logged_models([run.info.experiment_id],
                                        filter_string=f"source_run_id = '{run_id}'")  # fmt: skip
    return found[0].model_uri if len(found) else f"runs:/{run_id}/model"


def sim_scores(table: pd.DataFrame, kind: str) -> dict[str, float]:
    """The scores on the simulated test set (the report's ``test_galaxies.csv``) of the
    label-trained (``pred_*``) or truth-trained (``pred_truthnet_*``) networks: per target MAE,
    RMSE and r against what they learnt and against the truth, and the coverage of their sigma
    of what they learnt (``<t>_coverage_1sigma``, ``<t>_coverage_2sigma``)."""
    pred = "pred" if kind == "label" else "pred_truthnet"
    own = "label" if kind == "label" else "true"
    out: dict[str, float] = {}
    for t in TARGETS:
        if f"{pred}_{t}" not in table:
            continue
        p, sigma = table[f"{pred}_{t}"].to_numpy(float), table[f"{pred}_{t}{ERR}"].to_numpy(float)
        for name, ref in (("own", own), ("truth", "true")):  # the same twice for ``truth``
            r = table[f"{ref}_{t}"].to_numpy(float)
            ok = np.isfinite(p) & np.isfinite(r)
            out.update({f"{t}_vs_{name}_{k}": v for k, v in scores(r[ok], p[ok]).items()})
        r = table[f"{own}_{t}"].to_numpy(float)
        out[f"{t}_coverage_1sigma"] = coverage(r, p, sigma, 1.0)
        out[f"{t}_coverage_2sigma"] = coverage(r, p, sigma, 2.0)
    out["n"] = float(len(table))
    return out


def real_scores(model: str | Path, kind: str, run_params) -> tuple[dict, pd.DataFrame]:
    """Score ``model`` on the real suite (the run's ``evaluate.real``, ``simulate`` and
    ``morphology`` settings): per target, over the headline stamps (S/N per pixel >= 2.5), the
    suite's scores (:func:`casnet.evaluation.real.real_scores`) and the coverage of the model's
    sigma of its reference (the conventional value for ``label``, the noise-free reference for
    ``truth``); returns (the scores, the suite's per-stamp table)."""
    from casnet.evaluation.predictor import Predictor
    from casnet.evaluation.real import real_scores as suite_scores
    from casnet.evaluation.real import real_suite

    with tempfile.TemporaryDirectory(prefix="casnet-real-") as tmp:
        result = real_suite(Predictor(str(model)), run_params.evaluate.real,
                            run_params.simulate, run_params.morphology, tmp)  # fmt: skip
    table = result.tables["real_galaxies"]
    head = table[table["headline"]]
    out: dict[str, float] = {"n_headline": float(len(head))}
    ref = "conv" if kind == "label" else "ref"
    for t in TARGETS:
        out.update({f"{t}_{k}": float(v) for k, v in suite_scores(head, t).items()})
        args = (head[f"{ref}_{t}"], head[f"net_{t}"], head[f"net_{t}{ERR}"])
        out[f"{t}_coverage_1sigma"] = coverage(*args, 1.0)
        out[f"{t}_coverage_2sigma"] = coverage(*args, 2.0)
    return out, table


def choose_default(real: dict[str, dict]) -> tuple[str, str]:
    """The shipped name with the lower mean over C and A of its real-suite RMSE against the
    noise-free reference over the conventional measurement's (``rmse_ratio``), and why."""
    ratio = {name: float(np.mean([s[f"{t}_rmse_ratio"] for t in TARGETS]))
             for name, s in real.items()}  # fmt: skip
    best = min(ratio, key=lambda n: ratio[n] if np.isfinite(ratio[n]) else np.inf)
    said = ", ".join(f"{n} {v:.3f}" for n, v in ratio.items())
    why = (f"closer to the noise-free C and A of the real galaxies: mean over C and A of the "
           f"RMSE against the noise-free reference over the conventional measurement's, on the "
           f"real suite's headline stamps (S/N per pixel >= 2.5): {said}")  # fmt: skip
    return best, why


def _fmt(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if value is not None and np.isfinite(value) else "-"


def model_card(name: str, info: dict, sim: dict, real: dict, default: str, why: str) -> str:
    """The model card (markdown) of the shipped model ``name``: what it learnt, its training
    set, its scores on the simulated test set and on the real suite, what its sigma means, and
    whether it is the default."""
    kind = KINDS[name]
    symbol = {"concentration": "C", "asymmetry": "A"}
    lines = [
        f"# Model card: `{name}`",
        "",
        f"Generated by `make science` (casnet {str(info.get('git_commit', '?'))[:10]}, "
        f"{info.get('created', '?')}); scores from `{info.get('report', 'reports/science')}`.",
        "",
        "## What it is",
        "",
        f"- **Learnt**: {LEARNT[kind]}.",
        f"- **Training set**: {info.get('trained_on', '?')}; never any real galaxy.",
        '- **Takes**: raw stamps centred on their targets at 0.06"/px (CANDELS F160W-like), '
        "at least 60 px on a side; it cleans (galclean), crops and normalises them itself.",
        f"- **Sigma** (`*_err`): the expected distance from {MEANING[kind]}; calibrated on the "
        "simulated validation set.",
        f"- **Default**: {'yes' if name == default else 'no'} (`casnet predict` without "
        f"`--model` uses `{default}` where the project has no champion: {why}).",
        "",
        "## Simulated test set",
        "",
        f"{int(sim.get('n', 0))} simulated galaxies never trained on. Against what it learnt "
        "(own) and against the noise-free truth; coverage of its sigma of what it learnt "
        "(calibrated: 0.683 and 0.954).",
        "",
        "| quantity | MAE (own) | RMSE (own) | r (own) | RMSE (truth) | r (truth) | 1 sigma "
        "| 2 sigma |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in TARGETS:
        g = sim.get
        lines.append(
            f"| {symbol[t]} | {_fmt(g(f'{t}_vs_own_mae'))} | {_fmt(g(f'{t}_vs_own_rmse'))} | "
            f"{_fmt(g(f'{t}_vs_own_pearson_r'))} | {_fmt(g(f'{t}_vs_truth_rmse'))} | "
            f"{_fmt(g(f'{t}_vs_truth_pearson_r'))} | {_fmt(g(f'{t}_coverage_1sigma'))} | "
            f"{_fmt(g(f'{t}_coverage_2sigma'))} |"
        )
    ref = "the conventional value" if kind == "label" else "the noise-free reference"
    lines += [
        "",
        "## Real galaxies (the real suite)",
        "",
        f"{int(real.get('n_headline', 0))} views with S/N per pixel >= 2.5 of real COSMOS HST "
        "galaxies re-rendered as CANDELS F160W stamps (`casnet evaluate --suite real`); the "
        "reference is the conventional measurement of the noise-free stamp. Coverage: of "
        f"{ref}.",
        "",
        "| quantity | r vs conventional | slope on conventional | r vs reference | RMSE vs "
        "reference | RMSE ratio (over conventional) | 1 sigma | 2 sigma |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in TARGETS:
        g = real.get
        lines.append(
            f"| {symbol[t]} | {_fmt(g(f'{t}_net_conv_r'))} | {_fmt(g(f'{t}_net_conv_slope'))} | "
            f"{_fmt(g(f'{t}_net_ref_r'))} | {_fmt(g(f'{t}_net_rmse'))} | "
            f"{_fmt(g(f'{t}_rmse_ratio'))} | {_fmt(g(f'{t}_coverage_1sigma'))} | "
            f"{_fmt(g(f'{t}_coverage_2sigma'))} |"
        )
    lines += [
        "",
        "## Limits",
        "",
        "- Trained on simulated galaxies only: real clumpy, lopsided and irregular galaxies lie "
        "partly outside what it saw; the `ood_score` column (> 1: out of distribution) says "
        "which, and the real suite above says how far its values go off.",
        "- Stamps at another pixel scale, PSF or depth than CANDELS F160W are outside its "
        "training set (`casnet predict` refuses another pixel scale unless told otherwise).",
        "",
    ]
    return "\n".join(lines)


def provenance_info(record: dict, kind: str, report: Path, project: Path) -> dict:
    """The provenance of a shipped model (``provenance.json``) from the run's ``metrics.json``."""
    n = record.get("params", {}).get("data", {}).get("n_galaxies")
    metrics = record.get("metrics", {})
    kinds = ("mae", "rmse", "r")
    # the truth-trained networks' scores are the report's ``test_<t>_truthnet_vs_truth_*``
    scored = {k: metrics[k] for k in sorted(metrics)
              if k.startswith("test_") and k.rsplit("_", 1)[-1] in kinds
              and ("_truthnet_" in k) == (kind == "truth")}  # fmt: skip
    return {
        "name": next(name for name, learnt in KINDS.items() if learnt == kind),
        "learnt": kind,
        "trained_on": f"simulated CANDELS F160W-like stamps ({n} drawn by casnet.data.simulate), "
        + (
            "labelled by casnet's conventional C and A (the paper's labels)"
            if kind == "label"
            else "with the simulator's noise-free C and A as targets"
        ),
        "created": time.strftime("%Y-%m-%d"),
        "git_commit": record.get("git_commit"),
        "params_hash": record.get("params_hash"),
        "data_md5": record.get("data_md5"),
        "test_scores": scored,
        "degenerate": record.get("degenerate", {}),
        "report": os.path.relpath(report, project),
    }


def ship(run_params, project: Path, root: Path, report: Path, done: dict,
         folder: Path | None = None) -> list[str]:  # fmt: skip
    """Export both pretrained models with their model cards into the package (``folder``:
    elsewhere, for tests), choose the default, write ``report/pretrained.csv`` and return the
    report's section on them.

    ``run_params``: the run's own params (``science.set`` applied); the run's MLflow store must
    be the current one (:func:`casnet.science.run.publish` sees to it).
    """
    from casnet.networks import pretrained

    record = json.loads((report / "metrics.json").read_text())
    table = pd.read_csv(report / "test_galaxies.csv")
    register_truth(root, done, run_params.clean)
    uris = {"pretrained": "models:/casnet@champion",
            "pretrained-truth": f"models:/{TRUTH_COMBINED}@champion"}  # fmt: skip
    infos, sim, real = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="casnet-ship-") as tmp:
        for name, uri in uris.items():
            kind = KINDS[name]
            infos[name] = provenance_info(record, kind, report, project)
            sim[name] = sim_scores(table, kind)
            # scored as it will be shipped: the exported folder itself
            staged = pretrained.export(uri, infos[name], root=root, folder=Path(tmp) / name)
            real[name], _ = real_scores(staged, kind, run_params)
    default, why = choose_default(real)
    for name, uri in uris.items():
        infos[name].update(real_scores=real[name], sim_scores=sim[name])
        card = model_card(name, infos[name], sim[name], real[name], default, why)
        pretrained.export(uri, infos[name], root=root,
                          folder=pretrained.folder_of(name, folder), card=card)  # fmt: skip
        # beside the report too: the docs publish the reports (docs/hooks.py)
        (report / f"model_card_{name}.md").write_text(card)
    pretrained.set_default(default, why, folder)
    rows = [{"model": n, "suite": w, **s} for n in uris
            for w, s in (("simulated test", sim[n]), ("real", real[n]))]  # fmt: skip
    pd.DataFrame(rows).to_csv(report / "pretrained.csv", index=False, float_format="%.6g")
    return _section(sim, real, default, why)


def _section(sim: dict, real: dict, default: str, why: str) -> list[str]:
    """The report's section on the two shipped models."""
    lines = ["## The pretrained defaults (issue 30)", "",
             "Both shipped with a model card (`src/casnet/pretrained/MODEL_CARD.md`, "
             "`src/casnet/pretrained/truth/MODEL_CARD.md`; copies: "
             "[`model_card_pretrained.md`](model_card_pretrained.md), "
             "[`model_card_pretrained-truth.md`](model_card_pretrained-truth.md)); per model "
             "and suite: `pretrained.csv`. Coverage of each sigma of what its networks learnt "
             "(the labels, or the truth; on the real suite the conventional value, or the "
             "noise-free reference); target 0.60-0.76 (1 sigma) and 0.90-0.98 (2 sigma).", "",
             "| model | quantity | sim RMSE vs truth | sim coverage 1σ / 2σ "
             "| real RMSE vs reference | real RMSE ratio | real coverage 1σ / 2σ |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in sim:
        s, r = sim[name], real[name]
        for t in TARGETS:
            lines.append(
                f"| {name} | {t} | {_fmt(s.get(f'{t}_vs_truth_rmse'))} | "
                f"{_fmt(s.get(f'{t}_coverage_1sigma'))} / {_fmt(s.get(f'{t}_coverage_2sigma'))} "
                f"| {_fmt(r.get(f'{t}_net_rmse'))} | {_fmt(r.get(f'{t}_rmse_ratio'))} | "
                f"{_fmt(r.get(f'{t}_coverage_1sigma'))} / {_fmt(r.get(f'{t}_coverage_2sigma'))} |"
            )
    return [*lines, "", f"**Default: `{default}`**, {why}.", ""]
