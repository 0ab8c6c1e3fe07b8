"""Fine-tuning the shipped networks on a user's own labelled stamps: the worked example on the
vendored real galaxies (issue 29, "Transfer to a user's survey"; ``casnet benchmark finetune``).

A survey unlike the simulator's (the real-galaxy suite shows the pretrained networks barely
follow A on real morphology) is where a user fine-tunes: ``casnet train --init pretrained`` on
a few hundred to a few thousand of their own stamps, labelled by the conventional measurement
where it is reliable (high S/N). This module does that on the 88 vendored COSMOS galaxies
(:mod:`casnet.data.real`) and scores the result with the real suite
(:mod:`casnet.evaluation.real`) on galaxies the fine-tuning never saw:

1. **Held-out views** (the score): :func:`casnet.evaluation.real.real_suite` with the init
   model, at ``evaluate.real``'s settings (``eval_views`` views per galaxy): its per-stamp table
   (conventional, noise-free reference, the init network: the *before*) and its stamps.
2. **Labelled views** (the fine-tuning data): every galaxy drawn again, ``train_views`` views
   with other rotations, offsets and noise (``seed + 1``) and brighter where allowed (the own
   HST noise up to ``train_share`` of the stamp's noise variance instead of the suite's 15%: a
   user's labelled stamps are their bright ones). Each view's label is the conventional
   measurement of the observed stamp (:func:`casnet.morphology.measure`, what ``casnet
   measure`` gives a user), kept where S/N per pixel >= ``label_sn`` (statmorph's 2.5 by
   default), the measurement has no :data:`~casnet.core.flags.BAD_VALUES` flag and its
   aperture fits the networks' crop. Stamps become network-ready exactly as the init model
   prepares raw stamps (its galclean settings, crop, normalisation), and each is also used
   mirrored (C and A do not change under a reflection).
3. **Splits by galaxy, never by view** (:func:`split_by_galaxy`, stratified by visual kind):
   ``fine_fraction`` of the galaxies fine-tune (of those, ``val_fraction`` validate: early
   stopping and the sigma recalibration), the rest are held out. Each split fine-tunes both
   networks from the init model (:func:`casnet.networks.train.train` with ``init``) and scores
   the held-out galaxies' views before and after with :func:`casnet.evaluation.real.real_scores`:
   network vs conventional r and slope, network vs reference, RMSE vs the reference against the
   conventional's; for S/N per pixel >= 2.5 (the suite's headline) and all scored views. Several
   splits (seeds) give mean and standard deviation.

These galaxies are evaluation-only: training on them is refused everywhere else. The worked
example lifts that with ``train(..., allow_evaluation_only=True)``; those runs (in a temporary
MLflow store, removed at the end) are tagged ``casnet.evaluation_only_override=true`` and log no
model, so none can be registered or shipped.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from casnet.core.config import override
from casnet.core.errors import CasnetInputError
from casnet.core.flags import BAD_VALUES
from casnet.core.layout import EVALUATION_ONLY, TARGETS
from casnet.data.io.store import StoreWriter
from casnet.data.settings import RealSuiteConfig, SimulateConfig
from casnet.evaluation.predictor import Predictor
from casnet.evaluation.real import HEADLINE, HEADLINE_SN, real_scores, real_suite
from casnet.morphology import measure
from casnet.morphology.settings import MorphologyConfig
from casnet.networks.settings import ArchitectureConfig, SearchConfig

__all__ = [
    "SELECTIONS",
    "finetune",
    "format_finetune",
    "label_views",
    "split_by_galaxy",
]

#: the held-out views scored: the suite's headline and every scored view
SELECTIONS = {"headline": HEADLINE, "all": "all scored views"}
#: the scores reported (keys of :func:`casnet.evaluation.real.real_scores`) and their names
SCORES = {
    "net_conv_r": "r, network vs conventional",
    "net_conv_slope": "slope, network on conventional",
    "net_ref_r": "r, network vs reference",
    "net_ref_slope": "slope, network on reference",
    "net_rmse": "RMSE, network vs reference",
    "rmse_ratio": "RMSE ratio, network / conventional",
    "net_bias": "bias, network - reference",
}
#: scores of the conventional measurement (the same before and after: the same stamps)
CONVENTIONAL = {"conv_rmse": "RMSE, conventional vs reference",
                "conv_ref_r": "r, conventional vs reference"}  # fmt: skip


def split_by_galaxy(
    table: pd.DataFrame,
    *,
    fraction: float,
    seed: int,
    galaxy: str = "cosmos_ident",
    stratify: str | None = "kind",
) -> np.ndarray:
    """Which rows (views) fall on the first side of a split by galaxy: all views of a galaxy
    on one side, never on both.

    ``round(fraction * n)`` of the ``n`` galaxies go first (at least one and at most ``n - 1``
    where ``n >= 2``), spread over the values of ``stratify`` (the visual kind; None: no
    strata) in proportion: within a stratum of ``m`` galaxies shuffled by ``seed``, the ``i``-th
    is ranked at ``(i + u) / m`` with one ``u`` uniform in [0, 1) per stratum, and the lowest
    ranks go first. A rare kind is thus on either side by chance, not always on the first (as
    rounding each stratum's share would put a kind of one galaxy).

    Parameters
    ----------
    table : DataFrame
        One row per view, with columns ``galaxy`` and ``stratify``.
    fraction : float
        Share of the galaxies on the first side, in (0, 1).

    Returns
    -------
    ndarray of bool
        True for the rows of the first side.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    ids = table[galaxy].to_numpy()
    groups = table[stratify].astype(str).to_numpy() if stratify else np.zeros(len(table), str)
    ranked = []  # (rank, tie-break, galaxy)
    for group in sorted(set(groups)):
        members = sorted(set(ids[groups == group].tolist()))
        order = rng.permutation(len(members))
        u = rng.uniform()
        ranked += [((i + u) / len(members), rng.uniform(), members[k])
                   for i, k in enumerate(order)]  # fmt: skip
    ranked.sort(key=lambda r: r[:2])
    n = len(ranked)
    k = round(fraction * n)
    if n >= 2:
        k = min(max(k, 1), n - 1)
    first = [g for _, _, g in ranked[:k]]
    return np.isin(ids, np.asarray(first, dtype=ids.dtype))


def label_views(images: np.ndarray, catalog: pd.DataFrame, morph: MorphologyConfig, *,
                label_sn: float, crop: int) -> pd.DataFrame:  # fmt: skip
    """The conventional labels of rendered views and which of them a user would keep.

    Returns ``catalog`` with ``label_concentration``, ``label_asymmetry`` (the conventional C
    and A of each observed stamp), ``label_flag`` and ``labelled``: S/N per pixel >=
    ``label_sn``, no :data:`~casnet.core.flags.BAD_VALUES` flag, and the measurement's aperture
    (``aperture_rp`` R_p) inside the networks' ``crop`` (its half side), as the real suite
    scores only galaxies that fit it.
    """
    rows = []
    for image in images:
        m = measure(np.asarray(image, np.float64), config=morph)
        fits = m.r_petro * morph.aperture_rp <= crop / 2
        good = not (int(m.flag) & int(BAD_VALUES)) and bool(fits)
        rows.append({"label_concentration": m.concentration, "label_asymmetry": m.asymmetry,
                     "label_flag": int(m.flag), "label_ok": good})  # fmt: skip
    out = pd.concat([catalog.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    finite = np.isfinite(out[[f"label_{t}" for t in TARGETS]]).all(axis=1)
    out["labelled"] = out.pop("label_ok") & finite & (out["sn_per_pixel"] >= label_sn)
    return out


class _Recording(Predictor):
    """The init model as the real suite's predictor, keeping the stamps the suite rendered (it
    renders them itself): the held-out views are scored again after the fine-tuning."""

    stamps: np.ndarray | None = None

    def predict(self, stamps: np.ndarray) -> pd.DataFrame:
        self.stamps = np.asarray(stamps, dtype=np.float32)
        return super().predict(stamps)


def _network_ready(model, images: np.ndarray, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Raw stamps prepared as ``model`` (a :class:`~casnet.networks.registry.CasnetModel`)
    prepares them: cleaned with its galclean settings (seeded by ``ids``), cropped, normalised.
    Returns (N, s, s) float32 and ok flags."""
    from casnet.networks.registry import clean_stamps, network_inputs

    stamps = [np.asarray(s, np.float32) for s in images]
    if model.clean is not None:
        stamps = clean_stamps(stamps, list(ids), model.clean, model.input)
    x, ok = network_inputs(stamps, model.input)
    return x[..., 0], ok


def _write(path: Path, catalog: pd.DataFrame, images: np.ndarray, *, mirror: bool) -> Path:
    """A store of network-ready stamps with their labels (and mirrored copies)."""
    cat = catalog.reset_index(drop=True)
    imgs = np.asarray(images, np.float32)
    if mirror:  # C and A of a reflected galaxy are its own
        flipped = cat.assign(galaxy_id=cat["galaxy_id"].astype(str) + "-m")
        cat = pd.concat([cat, flipped], ignore_index=True)
        imgs = np.concatenate([imgs, imgs[:, :, ::-1]])
    keep = ["galaxy_id", "cosmos_ident", "kind", "sn_per_pixel", "label_concentration",
            "label_asymmetry"]  # fmt: skip
    cat = cat[keep].assign(**{EVALUATION_ONLY: True})
    chunk = 256
    with StoreWriter(path, stamp_shape=imgs.shape[1:], chunk_size=chunk,
                     meta={"stage": "finetune-example"}, resume=False) as writer:  # fmt: skip
        for lo in range(0, len(cat), chunk):
            writer.append(cat.iloc[lo : lo + chunk], {"image": imgs[lo : lo + chunk]})
    return path


def _scores(table: pd.DataFrame, net: dict[str, np.ndarray]) -> list[dict]:
    """:func:`real_scores` of the rows of ``table`` with the network values ``net`` (target ->
    values), per selection of :data:`SELECTIONS`."""
    rows = []
    scored = table.assign(**{f"net_{t}": v for t, v in net.items()})
    bright = scored["sn_per_pixel"].to_numpy(float) >= HEADLINE_SN
    for key, mask in (("headline", bright), ("all", np.ones(len(scored), bool))):
        for t in TARGETS:
            rows.append({"selection": key, "target": t, **real_scores(scored[mask], t)})
    return rows


def finetune(
    *,
    real_cfg: RealSuiteConfig,
    sim: SimulateConfig,
    morph: MorphologyConfig,
    archs: dict[str, ArchitectureConfig],
    init: str = "pretrained",
    splits: int = 3,
    seed: int = 0,
    fine_fraction: float = 2 / 3,
    val_fraction: float = 0.2,
    eval_views: int = 8,
    train_views: int = 16,
    train_share: float = 0.3,
    label_sn: float = HEADLINE_SN,
    epochs: int = 60,
    patience: int = 10,
    batch_size: int = 32,
    learning_rate_factor: float | None = None,
    mirror: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the worked example (module docstring) and return its report.

    Parameters
    ----------
    real_cfg : RealSuiteConfig
        ``evaluate.real``: the held-out views are drawn with it (``eval_views`` views each), the
        labelled views with ``train_views``, ``train_share`` and its seed + 1.
    sim, morph : the instrument and the conventional measurement's settings.
    archs : target -> ArchitectureConfig
        ``params.model``: the optimizer and learning rate of each network (its layers come from
        ``init``); the batch size is ``batch_size``.
    init : str
        The model fine-tuned and scored before (``pretrained``, a ``models:/`` URI or a model
        folder of the combined model).
    splits, seed : int
        Splits by galaxy, seeded ``seed``, ``seed + 1``, ...
    learning_rate_factor : float, optional
        The fine-tuning's learning rate over the architecture's; default
        :data:`casnet.networks.train.FINETUNE_LR_FACTOR`.

    Returns
    -------
    dict
        ``settings``, ``data`` (views and galaxies), ``splits`` (per split: the galaxies and
        stamps of each side, the epochs and the scores before and after), ``summary`` (mean and
        sd over the splits of each score: ``selection``, ``target``, ``score``, ``before_mean``,
        ``before_sd``, ``after_mean``, ``after_sd``, ``n_mean``) and ``seconds``.
    """
    import keras

    from casnet.networks.pretrained import NAME, model_path
    from casnet.networks.registry import CasnetModel
    from casnet.networks.train import FINETUNE_LR_FACTOR, train

    if splits < 1 or epochs < 1 or patience < 1 or batch_size < 1 or eval_views < 1:
        raise CasnetInputError("splits, epochs, patience, batch size and views must be >= 1")
    for name, value in (("fine_fraction", fine_fraction), ("val_fraction", val_fraction)):
        if not 0.0 < value < 1.0:
            raise CasnetInputError(f"{name} must lie in (0, 1), got {value!r}")
    factor = FINETUNE_LR_FACTOR if learning_rate_factor is None else learning_rate_factor
    if not factor > 0:
        raise CasnetInputError(f"the learning-rate factor must be > 0, got {factor!r}")
    t0 = time.perf_counter()
    source = str(model_path()) if init == NAME else init
    before = _Recording(source)
    start = before.pyfunc.unwrap_python_model()
    crop = start.input.size
    eval_cfg = override(real_cfg, source="benchmark finetune", views=eval_views)
    train_cfg = override(real_cfg, source="benchmark finetune", views=train_views,
                         max_own_noise_share=train_share, seed=real_cfg.seed + 1)  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="casnet-finetune-") as tmp:
        work = Path(tmp)
        log(f"finetune: the real suite on {eval_views} views per galaxy with {init} ...")
        suite = real_suite(before, eval_cfg, sim, morph, work / "figures")
        table = suite.tables["real_galaxies"].reset_index(drop=True)
        eval_images = before.stamps
        eval_x, eval_ok = _network_ready(start, eval_images, table["galaxy_id"].astype(str))
        table = table.assign(label_concentration=table["conv_concentration"],
                             label_asymmetry=table["conv_asymmetry"])  # fmt: skip
        scored = (table["excluded"] == "").to_numpy() & eval_ok

        log(f"finetune: drawing {train_views} labelled views per galaxy ...")
        from casnet.data.real import render_real

        drawn = render_real(train_cfg, sim)
        views = label_views(drawn.image, drawn.catalog, morph, label_sn=label_sn, crop=crop)
        train_x, train_ok = _network_ready(start, drawn.image, views["galaxy_id"].astype(str))
        views["labelled"] &= train_ok
        n_lab = int(views["labelled"].sum())
        log(f"finetune: {n_lab} of {len(views)} views labelled (S/N per pixel >= {label_sn:g}, "
            f"unflagged, fitting the {crop} px crop) of "
            f"{views.loc[views['labelled'], 'cosmos_ident'].nunique()} galaxies")  # fmt: skip

        galaxies = table.drop_duplicates("cosmos_ident")[["cosmos_ident", "kind"]]
        split_rows = []
        for s in range(splits):
            split_seed = seed + s
            fine = set(galaxies["cosmos_ident"][split_by_galaxy(galaxies, fraction=fine_fraction,
                                                                 seed=split_seed)])  # fmt: skip
            fine_gal = galaxies[galaxies["cosmos_ident"].isin(fine)]
            on_val = split_by_galaxy(fine_gal, fraction=val_fraction, seed=split_seed + 10_000)
            val = set(fine_gal["cosmos_ident"][on_val])
            learn = views["cosmos_ident"].isin(fine - val).to_numpy() & views["labelled"]
            check = views["cosmos_ident"].isin(val).to_numpy() & views["labelled"]
            held = ~table["cosmos_ident"].isin(fine).to_numpy() & scored
            if not (learn.any() and check.any() and held.any()):
                raise CasnetInputError(
                    f"split {s}: {int(learn.sum())} training, {int(check.sum())} validation and "
                    f"{int(held.sum())} held-out stamps: too few galaxies or labelled views "
                    "(more --train-views, a lower --label-sn or all galaxies)"
                )
            stores = {
                "train": _write(work / f"s{s}-train", views[learn], train_x[learn], mirror=mirror),
                "val": _write(work / f"s{s}-val", views[check], train_x[check], mirror=False),
                "test": _write(work / f"s{s}-test", table[held], eval_x[held], mirror=False),
            }
            log(f"finetune: split {s + 1}/{splits}: {len(fine - val)} galaxies "
                f"({int(learn.sum())} views{' x 2 mirrored' if mirror else ''}) fine-tune, "
                f"{len(val)} ({int(check.sum())} views) validate, "
                f"{galaxies['cosmos_ident'].nunique() - len(fine)} held out "
                f"({int(held.sum())} scored views)")  # fmt: skip
            networks, runs = {}, {}
            for t in TARGETS:
                arch = ArchitectureConfig(**{**archs[t].model_dump(), "batch_size": batch_size})
                result = train(t, arch, **stores, root=work, figure=False, verbose=0,
                               budget=SearchConfig(max_epochs=epochs, patience=patience,
                                                   seed=split_seed),
                               init=source, learning_rate=archs[t].learning_rate * factor,
                               allow_evaluation_only=True, log=lambda _m: None)  # fmt: skip
                networks[t] = result.network
                runs[t] = {k: result.metrics.get(k) for k in ("epochs", "best_epoch",
                                                              "final_val_rmse", "test_rmse",
                                                              "sigma_scale")}  # fmt: skip
            tuned = CasnetModel(networks, clean=start.clean)
            after = tuned.predict(None, eval_images[held])
            rows_before = _scores(table[held], {t: table.loc[held, f"net_{t}"].to_numpy(float)
                                                for t in TARGETS})  # fmt: skip
            rows_after = _scores(table[held], {t: after[t].to_numpy(float) for t in TARGETS})
            split_rows.append({
                "split": s, "seed": split_seed,
                "galaxies": {"fine_tune": sorted(int(g) for g in fine - val),
                             "validate": sorted(int(g) for g in val),
                             "held_out": sorted(int(g) for g in set(galaxies["cosmos_ident"])
                                                - fine)},
                "stamps": {"fine_tune": int(learn.sum()) * (2 if mirror else 1),
                           "validate": int(check.sum()), "held_out": int(held.sum())},
                "runs": runs, "before": rows_before, "after": rows_after,
            })  # fmt: skip
            keras.backend.clear_session()
    report = {
        "settings": {"init": init, "splits": splits, "seed": seed,
                     "fine_fraction": fine_fraction, "val_fraction": val_fraction,
                     "eval_views": eval_views, "train_views": train_views,
                     "train_share": train_share, "label_sn": label_sn, "epochs": epochs,
                     "patience": patience, "batch_size": batch_size,
                     "learning_rate_factor": factor,
                     "learning_rates": {t: archs[t].learning_rate * factor for t in TARGETS},
                     "optimizers": {t: archs[t].optimizer for t in TARGETS},
                     "mirror": mirror, "real": real_cfg.model_dump(mode="json")},
        "data": {"eval_views": len(table), "eval_scored": int(scored.sum()),
                 "eval_headline": int((scored & (table["sn_per_pixel"] >= HEADLINE_SN)).sum()),
                 "galaxies": int(galaxies["cosmos_ident"].nunique()),
                 "labelled_views": n_lab, "drawn_views": len(views)},
        "splits": split_rows,
        "summary": _summary(split_rows),
        "seconds": time.perf_counter() - t0,
    }  # fmt: skip
    return report


def _summary(split_rows: list[dict]) -> list[dict]:
    """Mean and sd over the splits of each score, before and after."""
    out = []
    frames = {k: pd.DataFrame([dict(r, split=s["split"]) for s in split_rows for r in s[k]])
              for k in ("before", "after")}  # fmt: skip
    for key in SELECTIONS:
        for t in TARGETS:
            sel = {k: f[(f["selection"] == key) & (f["target"] == t)] for k, f in frames.items()}
            for score in (*SCORES, *CONVENTIONAL):
                b = sel["before"][score].to_numpy(float)
                a = sel["after"][score].to_numpy(float)
                out.append({"selection": key, "target": t, "score": score,
                            "before_mean": _mean(b), "before_sd": _sd(b),
                            "after_mean": _mean(a), "after_sd": _sd(a),
                            "n_mean": _mean(sel["before"]["n"].to_numpy(float))})  # fmt: skip
    return out


def _mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _sd(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.std(ddof=1)) if x.size > 1 else math.nan


def _pm(mean: float, sd: float) -> str:
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.3f}" if not np.isfinite(sd) else f"{mean:.3f} ± {sd:.3f}"


def format_finetune(report: dict) -> str:
    """The report as markdown: what was done, then per selection and target the scores before
    and after (mean ± sd over the splits)."""
    s, d = report["settings"], report["data"]
    n = len(report["splits"])
    fine = np.mean([r["stamps"]["fine_tune"] for r in report["splits"]])
    lines = [
        "# Fine-tuning on real galaxies (casnet benchmark finetune)",
        "",
        f"Init model: {s['init']}. {d['galaxies']} vendored COSMOS galaxies; {n} split(s) by "
        f"galaxy (seeds {s['seed']}..{s['seed'] + n - 1}, stratified by visual kind): "
        f"{s['fine_fraction']:.0%} of the galaxies fine-tune (of them {s['val_fraction']:.0%} "
        "validate: early stopping and the sigma recalibration), the rest are held out. "
        f"Fine-tuning data: {s['train_views']} views per galaxy (own-noise share <= "
        f"{s['train_share']:g}, other rotations and noise than the held-out views), labelled by "
        f"the conventional measurement where S/N per pixel >= {s['label_sn']:g}, unflagged and "
        f"inside the crop: {d['labelled_views']} of {d['drawn_views']} views; "
        f"{fine:.0f} stamps per split{' with mirrored copies' if s['mirror'] else ''}. "
        f"Learning rate {s['learning_rate_factor']:g} x the architecture's "
        f"({', '.join(f'{t} {v:g}' for t, v in s['learning_rates'].items())}), batch "
        f"{s['batch_size']}, up to {s['epochs']} epochs, patience {s['patience']}.",
        "",
        f"Held-out views: the real suite (evaluate.real, {s['eval_views']} views per galaxy): "
        f"{d['eval_scored']} of {d['eval_views']} views scored, {d['eval_headline']} at S/N per "
        f"pixel >= {HEADLINE_SN:g}; per split only the held-out galaxies' views. Reference: the "
        "conventional measurement of the noise-free stamp (the real suite's). Mean ± sd over "
        "the splits.",
        "",
    ]
    table = pd.DataFrame(report["summary"])
    names = {**SCORES, **CONVENTIONAL}
    for key, title in SELECTIONS.items():
        lines.append(f"## {title}")
        lines.append("")
        rows = []
        for t in TARGETS:
            sub = table[(table["selection"] == key) & (table["target"] == t)]
            for _, r in sub.iterrows():
                same = r["score"] in CONVENTIONAL
                rows.append({"target": t, "score": names[r["score"]],
                             "n views": f"{r['n_mean']:.0f}",
                             "before (init)": _pm(r["before_mean"], r["before_sd"]),
                             "after (fine-tuned)": "(same stamps)" if same
                             else _pm(r["after_mean"], r["after_sd"])})  # fmt: skip
        lines += [pd.DataFrame(rows).to_markdown(index=False), ""]
    lines.append("Per split (epochs run / best, validation RMSE against the labels):")
    lines.append("")
    for r in report["splits"]:
        runs = "; ".join(f"{t} {v['epochs']:.0f}/{v['best_epoch']:.0f} epochs, val RMSE "
                         f"{v['final_val_rmse']:.3f}" for t, v in r["runs"].items())  # fmt: skip
        lines.append(f"- split {r['split']} (seed {r['seed']}): {len(r['galaxies']['fine_tune'])}"
                     f"/{len(r['galaxies']['validate'])}/{len(r['galaxies']['held_out'])} "
                     f"galaxies fine-tune/validate/held out, {r['stamps']['fine_tune']} stamps; "
                     f"{runs}")  # fmt: skip
    lines += ["", f"{report['seconds'] / 60:.1f} min."]
    return "\n".join(lines)
