"""Train on galclean'ed stamps or on raw crops? (issue 17 item 4; Tohill et al. 2021 Sec. 4.4)

The pipeline trains the networks on galclean'ed stamps (neighbours replaced by sky), and the
served model applies the same cleaning (:class:`casnet.networks.registry.CasnetModel`). The
paper suggests the other way out of train/serve skew: train on the raw crops, so a new survey
needs no cleaning at all. :func:`compare_inputs` answers which is better on a project's own data:
the same galaxies, the same split, the same architecture, budget and seed, once with the
pipeline's stamps and once with the raw 60x60 crops of the same galaxies (the select stage's
:class:`~casnet.data.preprocess.NetworkInput`), scored on the test set against the labels and
against the simulator's noiseless truth, on every galaxy and on the galaxies the cleaning
changed (a crop pixel differing by more than ``touched`` of the maximum).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from casnet.core.errors import CasnetInputError
from casnet.core.layout import RAW, TARGETS, TEST, TRAIN, VAL
from casnet.core.scores import DEGENERATE_MIN_R, scores
from casnet.data.io.store import StampStore, StoreWriter
from casnet.data.preprocess import NetworkInput

__all__ = ["INPUTS", "compare_inputs", "format_inputs_report", "raw_crop_store"]

#: the two kinds of network input compared
INPUTS = ("cleaned", "raw")


def raw_crop_store(split: str | Path, raw: str | Path, dest: str | Path, *,
                   max_galaxies: int | None = None) -> StampStore:  # fmt: skip
    """The galaxies of a network-ready store (``split``: its catalogue, labels and other arrays)
    with their images replaced by the raw (uncleaned) stamps of ``raw``, cropped and normalised
    as the select stage does.

    Raises
    ------
    CasnetInputError
        When a galaxy of ``split`` is not in ``raw``.
    """
    src, originals = StampStore(split), StampStore(raw)
    n = len(src) if max_galaxies is None else min(len(src), max_galaxies)
    ids = src.catalog["galaxy_id"].astype(str).to_numpy()[:n]
    where = pd.Series(np.arange(len(originals)),
                      index=originals.catalog["galaxy_id"].astype(str))  # fmt: skip
    missing = [g for g in ids if g not in where.index]
    if missing:
        raise CasnetInputError(f"{len(missing)} galaxies of {split} are not in {raw} "
                               f"(first: {missing[0]})")  # fmt: skip
    net_input = NetworkInput(src.stamp_shape[0])
    names = src.array_names
    writer = StoreWriter(dest, stamp_shape=src.stamp_shape, arrays=names,
                         chunk_size=src.chunk_size, meta={"stage": "raw-crops"},
                         resume=False)  # fmt: skip
    images = originals.array("image")
    with writer:
        for start in range(0, n, src.chunk_size):
            stop = min(start + src.chunk_size, n)
            rows = where[ids[start:stop]].to_numpy()
            order = np.argsort(rows)  # zarr reads sorted indices fastest
            stamps = np.empty((len(rows), *originals.stamp_shape), dtype=np.float32)
            stamps[order] = images.get_orthogonal_selection((rows[order], slice(None),
                                                             slice(None)))  # fmt: skip
            crops, ok = net_input.prepare(stamps)
            if not ok.all():
                crops[~ok] = 0.0  # kept as the split has them: a row per galaxy
            arrays = {name: np.asarray(src.array(name)[start:stop]) for name in names}
            arrays["image"] = crops
            writer.append(src.catalog.iloc[start:stop], arrays)
    return StampStore(dest)


def _touched(cleaned: StampStore, raw: StampStore, level: float) -> np.ndarray:
    """Galaxies whose network input the cleaning changed (max |difference| > ``level``)."""
    a, b = np.asarray(cleaned.array("image")[:]), np.asarray(raw.array("image")[:])
    n = min(len(a), len(b))
    return np.abs(a[:n] - b[:n]).reshape(n, -1).max(axis=1) > level


def compare_inputs(
    root: Path,
    arch: dict,
    budget,
    *,
    max_train: int | None = None,
    touched: float = 0.05,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Train each network on the cleaned stamps and on the raw crops; score both on the test set.

    Parameters
    ----------
    root : Path
        A project (or science-run) root holding ``data/raw`` and ``data/split``.
    arch : dict
        Target -> :class:`~casnet.networks.settings.ArchitectureConfig` (the same for both
        inputs).
    budget : SearchConfig
        ``max_epochs``, ``patience`` and ``seed``.
    max_train : int, optional
        Use only the first ``max_train`` training galaxies (a quicker answer).
    touched : float
        A galaxy counts as changed by the cleaning when a pixel of its normalised crop differs
        by more than this.

    Returns
    -------
    DataFrame
        One row per target, input and sample (``all`` / ``changed by cleaning``) and reference
        (``label`` / ``truth``): N, MAE, RMSE, Pearson r.
    """
    import keras
    import mlflow

    from casnet.core.tracking import use_store
    from casnet.networks.inference import predict_store
    from casnet.networks.train import train

    plain = {"compile": False}  # inference only

    for path in (RAW, TRAIN, VAL, TEST):
        if not (root / path).exists():
            raise CasnetInputError(f"{root / path} not found: run the pipeline (dvc repro) first")
    rows = []
    with tempfile.TemporaryDirectory(prefix="casnet-inputs-") as tmp:
        work = Path(tmp)
        stores = {"cleaned": {}, "raw": {}}
        for role, path in (("train", TRAIN), ("val", VAL), ("test", TEST)):
            limit = max_train if role == "train" else None
            if limit is not None and limit < len(StampStore(root / path)):
                stores["cleaned"][role] = _head(root / path, work / f"cleaned-{role}", limit)
            else:
                stores["cleaned"][role] = root / path
            stores["raw"][role] = raw_crop_store(root / path, root / RAW, work / f"raw-{role}",
                                                 max_galaxies=limit).path  # fmt: skip
            log(f"inputs: {role}: {len(StampStore(stores['raw'][role]))} galaxies")
        changed = _touched(StampStore(stores["cleaned"]["test"]),
                           StampStore(stores["raw"]["test"]), touched)  # fmt: skip
        log(f"inputs: the cleaning changed {changed.mean():.1%} of the test inputs "
            f"(a pixel by > {touched:g} of the maximum)")  # fmt: skip
        for target in TARGETS:
            for kind in INPUTS:
                data = stores[kind]
                log(f"inputs: training {target} on {kind} stamps ...")
                result = train(target, arch[target], train=data["train"], val=data["val"],
                               test=data["test"], budget=budget, root=work, figure=False,
                               verbose=0)  # fmt: skip
                with use_store(work):
                    model = mlflow.keras.load_model(result.model_uri, load_model_kwargs=plain)
                for ref in ("label", "truth"):
                    values, preds = predict_store(model, data["test"], target, labels=ref)
                    for sample, mask in (("all", np.ones(len(values), bool)),
                                         ("changed by cleaning", changed)):  # fmt: skip
                        ok = mask & np.isfinite(values) & np.isfinite(preds)
                        s = scores(values[ok], preds[ok]) if ok.sum() > 2 else {}
                        rows.append({"target": target, "input": kind, "sample": sample,
                                     "against": ref, "n": int(ok.sum()),
                                     "mae": s.get("mae", np.nan), "rmse": s.get("rmse", np.nan),
                                     "pearson_r": s.get("pearson_r", np.nan),
                                     "epochs": result.epochs})  # fmt: skip
                keras.backend.clear_session()
    return pd.DataFrame(rows)


def _head(store: Path, dest: Path, n: int) -> Path:
    """The first ``n`` galaxies of a store, as a store."""
    src = StampStore(store)
    names = src.array_names
    with StoreWriter(dest, stamp_shape=src.stamp_shape, arrays=names, chunk_size=src.chunk_size,
                     meta={"stage": "head"}, resume=False) as writer:  # fmt: skip
        for start in range(0, n, src.chunk_size):
            stop = min(start + src.chunk_size, n)
            writer.append(src.catalog.iloc[start:stop],
                          {k: np.asarray(src.array(k)[start:stop]) for k in names})  # fmt: skip
    return dest


def format_inputs_report(table: pd.DataFrame) -> str:
    """The comparison as a markdown table, and which input wins per target (test RMSE against
    the truth on every galaxy; against the labels where there is no truth). A degenerate
    network (Pearson r with the labels below :data:`~casnet.core.scores.DEGENERATE_MIN_R`) is a
    failed training, not a property of its input: no winner is named beside one."""
    lines = [table.to_markdown(index=False, floatfmt=".4g"), ""]
    for target in TARGETS:
        sub = table[(table.target == target) & (table["sample"] == "all")]
        ref = "truth" if sub[sub.against == "truth"]["n"].gt(0).all() else "label"
        rmse = sub[sub.against == ref].set_index("input")["rmse"]
        r = sub[sub.against == "label"].set_index("input")["pearson_r"]
        failed = [k for k in INPUTS if not r.get(k, np.nan) >= DEGENERATE_MIN_R]
        if failed:
            which = " and ".join(failed)
            lines.append(f"{target}: no winner: the network on {which} stamps is degenerate "
                         f"(Pearson r with the labels < {DEGENERATE_MIN_R:g})")  # fmt: skip
        elif rmse.notna().all() and len(rmse) == len(INPUTS):
            best = rmse.idxmin()
            lines.append(f"{target}: {best} stamps win (test RMSE against the {ref} "
                         f"{rmse[best]:.4g} vs {rmse.drop(best).iloc[0]:.4g})")  # fmt: skip
    return "\n".join(lines)
