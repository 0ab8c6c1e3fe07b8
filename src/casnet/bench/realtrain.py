"""Does the widened simulator close the gap to real galaxies? (``casnet benchmark realtrain``,
issue 29)

The same networks (the shipped networks' architectures, :func:`shipped_architectures`) are
trained with the same budget on two simulated training sets that differ only in the simulator:
the old one (:meth:`casnet.data.settings.SimulateConfig.without_real_morphology`) and the new
one (the settings given, issue 29's real-morphology structure included). Each set runs the
pipeline's own stages (simulate -> clean -> measure -> select -> split; no augmentation), the
networks learn the conventional labels, and every network is scored

- on the real suite (:func:`casnet.evaluation.real.real_suite`: 88 COSMOS galaxies as CANDELS
  F160W stamps, network vs conventional vs the noise-free reference; the issue's targets are
  for the views with S/N per pixel >= 2.5);
- on the test split of both simulators (against the labels and the idealised truth), so that
  "no loss on the simulated test set" is checked on the old simulator's galaxies too.

Each network is trained with several seeds; the report gives mean +- standard deviation over
them (one seed is an anecdote). The prepared stores are kept in the output folder and reused
by a later run with the same settings.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from casnet.core.layout import TARGETS
from casnet.core.scores import scores
from casnet.data.settings import (
    CleanConfig,
    RealSuiteConfig,
    SelectConfig,
    SimulateConfig,
    SplitConfig,
    StoreConfig,
)
from casnet.evaluation.real import HEADLINE, real_suite
from casnet.morphology.settings import MorphologyConfig
from casnet.networks.settings import ArchitectureConfig
from casnet.pipeline import clean, measure, select, simulate, split
from casnet.pipeline.settings import DaskConfig

__all__ = [
    "SIMULATORS",
    "TARGETS_REAL",
    "format_realtrain",
    "prepare",
    "realtrain",
    "shipped_architectures",
    "train_network",
]

#: the two training sets compared
SIMULATORS = ("old", "new")
#: issue 29's targets on the real suite (views with S/N per pixel >= 2.5), per target:
#: (score key of casnet.evaluation.real.real_scores, op, value). RMSE ratio: the network's
#: RMSE against the noise-free reference over the conventional's
TARGETS_REAL: dict[str, tuple[tuple[str, str, float], ...]] = {
    "asymmetry": (("net_conv_r", ">=", 0.80), ("net_conv_slope", ">=", 0.70),
                  ("rmse_ratio", "<=", 1.2)),
    "concentration": (("net_conv_r", ">=", 0.93), ("net_conv_slope", ">=", 0.80),
                      ("rmse_ratio", "<=", 1.2)),
}  # fmt: skip
#: the real-suite scores reported
_REAL_KEYS = ("net_conv_r", "net_conv_slope", "net_ref_r", "net_ref_slope", "rmse_ratio",
              "net_rmse", "conv_rmse")  # fmt: skip


def shipped_architectures() -> dict[str, ArchitectureConfig]:
    """The architectures of the packaged pretrained networks, read from their layers (blocks,
    convolutions per block, first filters, dense layers and units, dropout, head), with the
    optimiser the science run trained them with (RMSprop at 1e-3, issue 30) and batch 32: a
    training set of a few thousand galaxies gives 7 steps an epoch at the science run's 256, too
    few to train in 30 epochs (the first run of this benchmark: C never converged, A stopped on
    noise at 7-15 epochs, both near-degenerate on the simulated test sets)."""
    from casnet.networks.pretrained import model_path
    from casnet.networks.trust import load_combined

    networks = load_combined(model_path(), "pretrained").unwrap_python_model().networks
    out = {}
    for target in TARGETS:
        layers = networks[target].layers
        kinds = [type(layer).__name__ for layer in layers]
        convs = [la for la in layers if type(la).__name__ == "Conv2D"]
        dense = [la for la in layers if type(la).__name__ == "Dense"]
        blocks = kinds.count("AveragePooling2D")
        dropout = next(la.rate for la in layers if type(la).__name__ == "Dropout")
        out[target] = ArchitectureConfig(
            blocks=blocks, conv_per_block=len(convs) // blocks, filters=convs[0].filters,
            dense_layers=len(dense) - 1, dense_units=dense[0].units,
            dropout=round(float(dropout), 3), optimizer="rmsprop", learning_rate=1e-3,
            batch_size=32, head="gaussian" if dense[-1].units == 2 else "point",
        )  # fmt: skip
    return out


def _key(*parts: Any) -> str:
    text = json.dumps([p.model_dump(mode="json") if hasattr(p, "model_dump") else p
                       for p in parts], sort_keys=True)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepare(
    folder: str | Path,
    sim: SimulateConfig,
    n: int,
    *,
    clean_cfg: CleanConfig,
    morph: MorphologyConfig,
    select_cfg: SelectConfig,
    split_cfg: SplitConfig,
    dask: DaskConfig,
    progress: bool = True,
) -> dict[str, Path]:
    """The train / val / test stores of ``n`` galaxies of simulator ``sim`` in ``folder``, made
    by the pipeline's stages; reused when ``folder`` holds them for the same settings."""
    folder = Path(folder)
    key = _key(sim, n, clean_cfg, morph, select_cfg, split_cfg)
    done = folder / "prepared.json"
    stores = {s: folder / "split" / s for s in ("train", "val", "test")}
    if done.is_file() and json.loads(done.read_text()).get("key") == key:
        return stores
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    store = StoreConfig()
    simulate.run(sim, n, store, folder / "raw", morphology=morph, dask=dask,
                 show_progress=progress)  # fmt: skip
    clean.run(clean_cfg, store, folder / "raw", folder / "clean", dask=dask,
              show_progress=progress)  # fmt: skip
    measure.run(morph, folder / "clean", folder / "measured.parquet", dask=dask,
                show_progress=progress)  # fmt: skip
    select.run(select_cfg, store, folder / "clean", folder / "measured.parquet",
               folder / "selected", show_progress=progress)  # fmt: skip
    _, metrics = split.run(split_cfg, store, folder / "selected", folder / "split",
                           show_progress=progress)  # fmt: skip
    # the stages' intermediate stores are not needed again: keep the splits only
    for name in ("raw", "clean", "selected"):
        shutil.rmtree(folder / name, ignore_errors=True)
    done.write_text(json.dumps({"key": key, "n": n, **metrics}))
    return stores


def train_network(
    arch: ArchitectureConfig,
    target: str,
    train: Path,
    val: Path,
    *,
    epochs: int,
    patience: int,
    seed: int,
):
    """A network of ``arch`` trained on the labels of ``train`` with early stopping on ``val``
    (best weights restored); returns the Keras model and the epochs run."""
    import keras

    from casnet.networks.architecture import build_model
    from casnet.networks.dataset import store_dataset, store_input
    from casnet.networks.metrics import EARLY_STOPPING

    keras.utils.set_random_seed(seed)
    model = build_model(arch, input_size=store_input(train, val).size, name=f"casnet_{target}")
    history = model.fit(
        store_dataset(train, target, batch_size=arch.batch_size, shuffle=True, seed=seed),
        validation_data=store_dataset(val, target, batch_size=arch.batch_size),
        epochs=epochs, shuffle=False, verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(monitor=EARLY_STOPPING, mode="min",
                                                 patience=patience, restore_best_weights=True)],
    )  # fmt: skip
    return model, len(history.history["loss"])


class _Networks:
    """A predictor for :func:`casnet.evaluation.real.real_suite` from two in-memory networks:
    the combined model's own preprocessing (galclean with ``clean``, crop, normalise)."""

    pyfunc = None  # no out-of-distribution fit

    def __init__(self, networks: dict[str, Any], clean_cfg: CleanConfig) -> None:
        from casnet.networks.registry import CasnetModel

        self.model = CasnetModel(networks, clean=clean_cfg)

    def predict(self, stamps: np.ndarray) -> pd.DataFrame:
        return self.model.predict(None, np.asarray(stamps, dtype=np.float32))


def _sim_scores(model, store: Path, target: str) -> dict[str, float]:
    from casnet.networks.inference import predict_store

    out = {}
    for labels in ("label", "truth"):
        values, preds = predict_store(model, store, target, labels=labels)
        ok = np.isfinite(values) & np.isfinite(preds)
        s = scores(values[ok], preds[ok])
        out[f"{labels}_r"], out[f"{labels}_rmse"] = s["pearson_r"], s["rmse"]
    return out


def realtrain(
    n: int,
    *,
    sim: SimulateConfig,
    real_cfg: RealSuiteConfig,
    clean_cfg: CleanConfig,
    morph: MorphologyConfig,
    select_cfg: SelectConfig,
    split_cfg: SplitConfig,
    dask: DaskConfig,
    out: str | Path,
    seeds: tuple[int, ...] = (1, 2, 3),
    epochs: int = 40,
    patience: int = 8,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train on the old and the new simulator and score on the real suite and both test sets.

    Returns
    -------
    dict
        ``runs``: one entry per (simulator, seed) with the epochs per target, the real suite's
        scores (``real``: per target, headline and all views) and the simulated test scores
        (``sim``: per test simulator and target); ``summary``: mean and standard deviation over
        seeds of each; ``targets``: the issue's real-suite targets, met or not, per simulator;
        ``settings`` and ``timing``.
    """
    out = Path(out)
    arch = shipped_architectures()
    sims = {"old": sim.without_real_morphology(), "new": sim}
    timing: dict[str, float] = {}
    stores = {}
    for name, cfg in sims.items():
        t0 = time.perf_counter()
        log(f"realtrain: the {name} simulator's training set ({n} galaxies)")
        stores[name] = prepare(out / name, cfg, n, clean_cfg=clean_cfg, morph=morph,
                               select_cfg=select_cfg, split_cfg=split_cfg, dask=dask,
                               progress=progress)  # fmt: skip
        timing[f"prepare_{name}"] = time.perf_counter() - t0
    runs = []
    for name in SIMULATORS:
        for seed in seeds:
            t0 = time.perf_counter()
            nets, epochs_run, sim_scores = {}, {}, {}
            for target in TARGETS:
                log(f"realtrain: {name} simulator, seed {seed}: training the {target} network")
                nets[target], epochs_run[target] = train_network(
                    arch[target], target, stores[name]["train"], stores[name]["val"],
                    epochs=epochs, patience=patience, seed=seed,
                )  # fmt: skip
                for test_sim in SIMULATORS:
                    sim_scores.setdefault(test_sim, {})[target] = _sim_scores(
                        nets[target], stores[test_sim]["test"], target
                    )
            log(f"realtrain: {name} simulator, seed {seed}: the real suite")
            suite = real_suite(_Networks(nets, clean_cfg), real_cfg, sim, morph,
                               out / "figures" / f"{name}-{seed}")  # fmt: skip
            real = {
                target: {
                    key: {k: suite.metrics.get(f"{target}_{key}_{k}", np.nan) for k in _REAL_KEYS}
                    for key in ("sn2p5", "all")
                }
                for target in TARGETS
            }
            n_headline = suite.metrics.get("n_headline")
            runs.append({"simulator": name, "seed": seed, "epochs": epochs_run, "real": real,
                         "sim": sim_scores, "n_headline": n_headline})  # fmt: skip
            timing[f"train_{name}_{seed}"] = time.perf_counter() - t0
    summary = _summary(runs)
    targets = {
        name: [
            {"target": t, "score": k, "wanted": f"{op} {v:g}",
             "mean": summary[name]["real"][t]["sn2p5"][k]["mean"],
             "met": bool(_met(summary[name]["real"][t]["sn2p5"][k]["mean"], op, v))}
            for t, checks in TARGETS_REAL.items() for k, op, v in checks
        ]
        for name in SIMULATORS
    }  # fmt: skip
    counts = {name: json.loads((out / name / "prepared.json").read_text()) for name in sims}
    return {"runs": runs, "summary": summary, "targets": targets, "timing": timing,
            "settings": {"n": n, "seeds": list(seeds), "epochs": epochs, "patience": patience,
                         "architectures": {t: a.model_dump(mode="json") for t, a in arch.items()},
                         "stores": counts, "views": real_cfg.views}}  # fmt: skip


def _met(value: float, op: str, wanted: float) -> bool:
    return bool(value >= wanted) if op == ">=" else bool(value <= wanted)


def _mean_sd(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()) if v.size else np.nan,
            "sd": float(v.std(ddof=1)) if v.size > 1 else np.nan, "n": int(v.size)}  # fmt: skip


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of every number of :func:`realtrain`'s runs."""
    out: dict[str, Any] = {}
    for name in SIMULATORS:
        mine = [r for r in runs if r["simulator"] == name]
        if not mine:
            continue
        real = {t: {key: {k: _mean_sd([r["real"][t][key][k] for r in mine]) for k in _REAL_KEYS}
                    for key in ("sn2p5", "all")} for t in TARGETS}  # fmt: skip
        sim = {ts: {t: {k: _mean_sd([r["sim"][ts][t][k] for r in mine])
                        for k in mine[0]["sim"][ts][t]} for t in TARGETS}
               for ts in mine[0]["sim"]}  # fmt: skip
        out[name] = {"real": real, "sim": sim}
    return out


def _ms(d: dict[str, float], digits: int = 2) -> str:
    if not np.isfinite(d["mean"]):
        return "-"
    sd = f" ± {d['sd']:.{digits}f}" if np.isfinite(d["sd"]) else ""
    return f"{d['mean']:.{digits}f}{sd}"


def format_realtrain(report: dict[str, Any]) -> str:
    """Markdown: the settings, the real suite per simulator (mean ± sd over seeds), the
    simulated test sets, the targets met or not."""
    st, summary = report["settings"], report["summary"]
    counts = ", ".join(f"{k}: {v.get('train', '?')} train / {v.get('val', '?')} val / "
                       f"{v.get('test', '?')} test" for k, v in st["stores"].items())  # fmt: skip
    n_head = sorted({r["n_headline"] for r in report["runs"]})
    lines = [
        f"Networks of the shipped architectures trained on {st['n']} simulated galaxies per "
        f"simulator ({counts}; conventional labels, no augmentation), at most {st['epochs']} "
        f"epochs, patience {st['patience']}, seeds {st['seeds']}; mean ± sd over the seeds. "
        f"Real suite: {st['views']} views per galaxy; {HEADLINE}: {n_head} views.",
        "",
        f"Real suite, views with {HEADLINE} (network vs conventional; RMSE against the "
        "noise-free reference, network over conventional):",
        "",
        "| target | simulator | net vs conv r | slope | net vs ref r | slope | RMSE ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in TARGETS:
        for name in SIMULATORS:
            r = summary[name]["real"][t]["sn2p5"]
            lines.append(f"| {t} | {name} | {_ms(r['net_conv_r'])} | {_ms(r['net_conv_slope'])} "
                         f"| {_ms(r['net_ref_r'])} | {_ms(r['net_ref_slope'])} "
                         f"| {_ms(r['rmse_ratio'])} |")  # fmt: skip
    lines += ["", "Real suite, all views:", "",
              "| target | simulator | net vs conv r | slope | RMSE ratio |",
              "|---|---|---|---|---|"]  # fmt: skip
    for t in TARGETS:
        for name in SIMULATORS:
            r = summary[name]["real"][t]["all"]
            lines.append(f"| {t} | {name} | {_ms(r['net_conv_r'])} | {_ms(r['net_conv_slope'])} "
                         f"| {_ms(r['rmse_ratio'])} |")  # fmt: skip
    lines += ["", "Simulated test sets (r and RMSE against the labels and the idealised truth):",
              "", "| target | trained on | tested on | r (labels) | RMSE (labels) | r (truth) "
              "| RMSE (truth) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for t in TARGETS:
        for name in SIMULATORS:
            for ts, by_t in summary[name]["sim"].items():
                s = by_t[t]
                lines.append(f"| {t} | {name} | {ts} | {_ms(s['label_r'])} "
                             f"| {_ms(s['label_rmse'], 3)} | {_ms(s['truth_r'])} "
                             f"| {_ms(s['truth_rmse'], 3)} |")  # fmt: skip
    lines += ["", f"Issue 29's targets ({HEADLINE}, mean over seeds):", "",
              "| target | score | wanted | old | new | met (new) |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    old = {(x["target"], x["score"]): x for x in report["targets"]["old"]}
    for x in report["targets"]["new"]:
        o = old[(x["target"], x["score"])]
        lines.append(f"| {x['target']} | {x['score']} | {x['wanted']} | {o['mean']:.2f} "
                     f"| {x['mean']:.2f} | {'yes' if x['met'] else '**no**'} |")  # fmt: skip
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in report["timing"].items())
    lines += ["", f"Run time: {timing}"]
    return "\n".join(lines)
