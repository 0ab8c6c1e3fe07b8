"""Scoring new stamps with a registered model: ``casnet predict`` (Tohill et al. 2021 Sec. 4.4).

Inputs are FITS files, folders of them, or a casnet store. They are read and scored in chunks
(the model is pulled once to a local folder, then loaded once per process), in this process or on
Dask workers for large inputs, so a cluster can score a survey with the same options as the data
pipeline. Every input gets a row: a stamp the networks cannot take (unreadable file, not 2-D,
smaller than the networks' crop, 60x60 by default, or nothing finite and positive in it) has NaN
values,
``predict_flag`` :attr:`~casnet.core.flags.PredictFlag.UNUSABLE` and the reason in
``predict_flag_reasons``. The model applies :func:`casnet.data.preprocess.crop_normalise` itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from casnet.core.errors import CasnetInputError
from casnet.core.flags import PredictFlag
from casnet.data.io.fits import expand_paths, path_text, read_image
from casnet.data.io.store import CATALOG
from casnet.data.preprocess import NetworkInput
from casnet.morphology.settings import MorphologyConfig

__all__ = ["WorkUnit", "plan_chunks", "predict", "score_chunk"]

_MODELS: dict[str, Any] = {}  # per process: a loaded model per local path


@dataclass(frozen=True)
class WorkUnit:
    """A unit of scoring work: FITS paths, or a range of a store (not a
    :class:`casnet.data.io.store.Chunk`, which holds a store slice's data)."""

    files: tuple[str, ...] = ()
    store: str | None = None
    start: int = 0
    stop: int = 0

    def __len__(self) -> int:
        return len(self.files) if self.store is None else self.stop - self.start


def _is_store(path: Path) -> bool:
    return path.is_dir() and (path / CATALOG).exists()


def plan_chunks(inputs: Sequence[str | Path], chunk_size: int) -> list[WorkUnit]:
    """Split the inputs into chunks of at most ``chunk_size`` galaxies (stores stay whole)."""
    if not inputs:
        raise CasnetInputError("no input given: FITS files, folders of them, or a casnet store")
    chunks: list[WorkUnit] = []
    files: list[str] = []
    for item in map(Path, inputs):
        if _is_store(item):
            from casnet.data.io.store import StampStore

            n = len(StampStore(item))
            chunks += [WorkUnit(store=str(item), start=s, stop=min(s + chunk_size, n))
                       for s in range(0, n, chunk_size)]  # fmt: skip
        elif item.is_dir() and not expand_paths([item]):
            raise CasnetInputError(f"{item}: no FITS files and not a casnet store")
        else:
            files += [str(p) for p in expand_paths([item])]
    chunks += [WorkUnit(files=tuple(files[i : i + chunk_size]))
               for i in range(0, len(files), chunk_size)]  # fmt: skip
    return chunks


def _read(chunk: WorkUnit, hdu: int | str | None) -> list[tuple[str, str, np.ndarray | None, str]]:
    """``(galaxy_id, source, image or None, reason)`` for each input of a chunk."""
    if chunk.store is not None:
        from casnet.data.io.store import StampStore

        store = StampStore(chunk.store)
        ids = store.catalog["galaxy_id"].iloc[chunk.start : chunk.stop].astype(str)
        images = np.asarray(store.array("image")[chunk.start : chunk.stop])
        return [(gid, chunk.store, img, "") for gid, img in zip(ids, images, strict=True)]
    out = []
    for name in chunk.files:
        path = Path(name)
        gid = path_text(path.name.split(".fits")[0] if ".fits" in path.name else path.stem)
        source = path_text(path)
        try:
            image, _ = read_image(path, hdu)
        except (CasnetInputError, OSError, ValueError) as exc:
            out.append((gid, source, None, path_text(str(exc))))
            continue
        out.append((gid, source, image, ""))
    return out


def _check(image: np.ndarray, net_input: NetworkInput) -> str:
    """Why the networks cannot take ``image`` ('' when they can)."""
    side = net_input.size
    if image.ndim != 2:
        return f"not a 2-D image (shape {image.shape})"
    if min(image.shape) < side:
        return f"{image.shape[0]}x{image.shape[1]} px is smaller than {side}x{side}"
    if not net_input.prepare(image)[1]:
        return f"no finite positive pixel in the central {side}x{side}"
    return ""


def _network_input(path: str) -> NetworkInput:
    """The crop of the combined model at ``path`` (read from its networks).

    Raises
    ------
    CasnetInputError
        When ``path`` is not the combined model (a single network, or another model).
    """
    try:
        combined = _model(path).unwrap_python_model()
        return combined.input
    except Exception as exc:  # a Keras flavour has no python model; another pyfunc no .input
        raise CasnetInputError(
            f"{path} is not casnet's combined model (models:/casnet@champion takes raw stamps; "
            f"a single network, models:/casnet-<target>, takes crops): {exc}"
        ) from None


def _model(path: str):
    if path not in _MODELS:
        import mlflow.pyfunc

        _MODELS[path] = mlflow.pyfunc.load_model(path)
    return _MODELS[path]


def score_chunk(chunk: WorkUnit, model_path: str, *, hdu: int | str | None = None,
                conventional: MorphologyConfig | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Rows for one chunk: galaxy_id, source, concentration, concentration_err, asymmetry,
    asymmetry_err (the networks' sigmas; NaN without a Gaussian head), predict_flag,
    predict_flag_reasons.

    Runs where it is called (a Dask worker or this process); ``model_path`` is a local model
    folder, loaded once per process.
    """
    rows, good = [], []
    # the crop the registered networks were trained on (it travels with the model)
    net_input = _network_input(model_path)
    for gid, source, image, reason in _read(chunk, hdu):
        if image is not None and not reason:
            reason = _check(np.asarray(image), net_input)
        row = {"galaxy_id": gid, "source": source, "concentration": math.nan,
               "concentration_err": math.nan, "asymmetry": math.nan, "asymmetry_err": math.nan,
               "predict_flag": int(PredictFlag.UNUSABLE if reason else PredictFlag.NONE),
               "predict_flag_reasons": f"UNUSABLE: {reason}" if reason else ""}  # fmt: skip
        if conventional is not None:
            row.update(_conventional(image, conventional))
        rows.append(row)
        if not reason:
            good.append((len(rows) - 1, np.asarray(image, dtype=np.float32)))
    if good:
        # the ids travel with the stamps: a model that cleans them seeds each galaxy's cleaning
        # by its id, as the pipeline's clean stage does
        table = _model(model_path).predict(
            {"stamp": [g[1] for g in good], "galaxy_id": [rows[g[0]]["galaxy_id"] for g in good]}
        )
        columns = ("concentration", "concentration_err", "asymmetry", "asymmetry_err")
        for j, (i, _) in enumerate(good):
            for name in columns:
                # a model registered before issue 18 returns no _err columns
                rows[i][name] = float(table[name].iloc[j]) if name in table else math.nan
    return rows


def _conventional(image: np.ndarray | None, cfg: MorphologyConfig) -> dict[str, Any]:
    """Our conventional C and A beside the networks' (``--with-conventional``)."""
    out = {"conventional_concentration": math.nan, "conventional_asymmetry": math.nan,
           "conventional_flag": -1, "conventional_flag_reasons": "not measured"}  # fmt: skip
    if image is None:
        return out
    from casnet.morphology import measure

    m = measure(np.asarray(image, dtype=np.float64), config=cfg)
    return {"conventional_concentration": m.concentration, "conventional_asymmetry": m.asymmetry,
            "conventional_flag": int(m.flag),
            "conventional_flag_reasons": m.flag_reasons}  # fmt: skip


def predict(
    inputs: Sequence[str | Path],
    model_path: str,
    *,
    chunk_size: int = 256,
    hdu: int | str | None = None,
    conventional: MorphologyConfig | None = None,
    scheduler: str | None = None,
    workers: int | None = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Score every input with the model at ``model_path`` (a local MLflow model folder).

    ``workers=0`` and no ``scheduler`` runs in this process; otherwise chunks go to Dask.
    """
    from casnet.core.parallel import executor, map_ordered
    from casnet.core.progress import progress_bar

    chunks = plan_chunks(inputs, chunk_size)
    total = sum(len(c) for c in chunks)
    rows: list[dict[str, Any]] = []
    with executor(scheduler, workers) as client, progress_bar(
        total, desc="predict", enabled=progress
    ) as bar:  # fmt: skip
        items = ((c, model_path) for c in chunks)

        def run(chunk, path):
            return score_chunk(chunk, path, hdu=hdu, conventional=conventional)

        for part in map_ordered(client, run, items):
            rows += part
            bar.update(len(part))
    return pd.DataFrame(rows)
