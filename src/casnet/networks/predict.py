"""Scoring new stamps with a registered model: ``casnet predict`` (Tohill et al. 2021 Sec. 4.4).

Inputs are FITS files, folders of them, or a casnet store. They are read and scored in chunks
(the model is pulled once to a local folder, then loaded once per process), in this process or on
Dask workers for large inputs, so a cluster can score a survey with the same options as the data
pipeline. Every input gets a row: a stamp the networks cannot take (unreadable file, not 2-D,
smaller than the networks' crop, 60x60 by default, or nothing finite and positive in it) has NaN
values,
``predict_flag`` :attr:`~casnet.core.flags.PredictFlag.UNUSABLE` and the reason in
``predict_flag_reasons``. The model applies :func:`casnet.data.preprocess.crop_normalise` itself.

Issue 28's checks: a FITS stamp whose header gives a pixel scale (WCS or ``PIXSCALE``) other than
the model's (:func:`model_pixel_scale`) is not scored (the networks learnt sizes in pixels; a
0.1"/px stamp read as 0.06"/px is a galaxy 1.7x smaller), unless ``check_scale`` is off; a stamp
with NaN/inf pixels in the network's crop is scored (the model's cleaning fills them with sky)
but flagged :attr:`~casnet.core.flags.PredictFlag.INVALID_PIXELS`, as ``casnet measure`` flags
them; a single FITS file asked for alone that cannot be read or scored is an error (``strict``),
as it is for ``casnet measure``.

Issue 29's check: with the model's out-of-distribution fit (:mod:`casnet.networks.ood`) every
scored stamp gets an ``ood_score`` (1 at the fit's threshold, which 1% of simulated galaxies
exceed) and a stamp above 1 is flagged
:attr:`~casnet.core.flags.PredictFlag.OUT_OF_DISTRIBUTION`: the values are given, but a galaxy
the networks have never seen the like of must not look like a confident answer. A model without
a fit scores NaN and :func:`predict` says so once on stderr.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from casnet.core.errors import CasnetInputError
from casnet.core.flags import PredictFlag
from casnet.core.quantities import SCHEMA
from casnet.data.io.fits import expand_paths, path_text, pixel_scale, read_image
from casnet.data.io.store import CATALOG
from casnet.data.preprocess import NetworkInput
from casnet.morphology.settings import MorphologyConfig

__all__ = [
    "DEFAULT_PIXEL_SCALE",
    "SCALE_TOLERANCE",
    "WorkUnit",
    "model_pixel_scale",
    "network_input",
    "ood_notice",
    "plan_chunks",
    "predict",
    "provenance",
    "score_chunk",
    "score_stamps",
]

_MODELS: dict[str, Any] = {}  # per process: a loaded model per local path

#: arcsec/px of every model that does not record its own: casnet's networks have been trained on
#: the simulator's CANDELS F160W grid (``simulate.pixel_scale``, 0.06"/px; Koekemoer et al. 2011)
DEFAULT_PIXEL_SCALE = 0.06
#: a stamp's pixel scale may differ from the model's by this fraction (header rounding: 0.06 is
#: written 0.0600 or as a CD matrix of 1.6667e-05 deg) before it is refused
SCALE_TOLERANCE = 0.02


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


def model_pixel_scale(path: str) -> float:
    """The pixel scale ("/px) the combined model at ``path`` was trained on: its MLmodel's
    ``config.pixel_scale`` where recorded, else :data:`DEFAULT_PIXEL_SCALE` (read from the file,
    without loading the model)."""
    import yaml

    try:
        spec = yaml.safe_load((Path(path) / "MLmodel").read_text()) or {}
        config = spec["flavors"]["python_function"].get("config") or {}
        return float(config.get("pixel_scale") or DEFAULT_PIXEL_SCALE)
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return DEFAULT_PIXEL_SCALE


def provenance(model: str, local: str | Path, root: Path | None = None) -> dict[str, str]:
    """What scored a catalogue, for its metadata (issue 28: no output said which model made it).

    Parameters
    ----------
    model : str
        The model as resolved (:func:`casnet.networks.pretrained.resolve`): a ``models:/`` URI,
        a local folder, or the pretrained model's folder.
    local : str or Path
        Its local copy.

    Returns
    -------
    dict of str to str
        ``casnet_version``; ``model`` (``pretrained``, the URI, or the folder's absolute path);
        ``model_version`` (a registered model's version number), ``model_run_id`` (its MLflow
        run), or ``model_commit`` and ``model_created`` (the pretrained model's git commit and
        date); and ``model_description``, one line for people.
    """
    from casnet import __version__
    from casnet.networks import pretrained

    meta = {"casnet_version": __version__}
    shipped = pretrained.shipped_name(local)
    if shipped is not None:
        info = pretrained.provenance(pretrained.folder_of(shipped))
        commit = str(info.get("git_commit", ""))
        meta.update(model=shipped, model_commit=commit,
                    model_created=str(info.get("created", "")))  # fmt: skip
        created = meta["model_created"]
        meta["model_description"] = f"{shipped} (casnet {commit[:10]}, {created})"
        return meta
    if model.startswith("models:/"):
        meta["model"] = model
        version = _registered_version(model, root)
        if version is not None:
            meta.update(model_version=str(version.version), model_run_id=str(version.run_id))
            meta["model_description"] = f"{model} (version {version.version})"
        else:
            meta["model_description"] = model
        return meta
    meta["model"] = str(Path(model).resolve())
    meta["model_description"] = meta["model"]
    return meta


def _registered_version(uri: str, root: Path | None):
    """The registry's version object for ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``
    (None when it cannot say)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from casnet.core.tracking import tracking_uri

    ref = uri.removeprefix("models:/")
    try:
        store = tracking_uri(root)
        client = MlflowClient(store, registry_uri=store)
        if "@" in ref:
            return client.get_model_version_by_alias(*ref.split("@", 1))
        return client.get_model_version(*ref.split("/", 1))
    except (MlflowException, TypeError, ValueError):
        return None


def _scale_mismatch(header, expected: float | None) -> str:
    """Why a stamp's pixel scale (from its header) is not the model's ('' when it is, or when
    the header does not say)."""
    if expected is None or header is None:
        return ""
    found = pixel_scale(header)
    if found is None or abs(found - expected) <= SCALE_TOLERANCE * expected:
        return ""
    return (f"pixel scale {found:.4g}\"/px (header) is not the model's {expected:.4g}\"/px: "
            "resample the stamp to the model's grid, or pass --ignore-pixel-scale")  # fmt: skip


def _read(chunk: WorkUnit, hdu: int | str | None, expected_scale: float | None = None,
          strict: bool = False) -> list[tuple[str, str, np.ndarray | None, str]]:  # fmt: skip
    """``(galaxy_id, source, image or None, reason)`` for each input of a chunk; ``strict``
    raises instead of giving a reason."""
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
            image, header = read_image(path, hdu)
            why = _scale_mismatch(header, expected_scale)
            if why and strict:
                raise CasnetInputError(f"{source}: {why}")
        except (CasnetInputError, OSError, ValueError) as exc:
            if strict:
                raise CasnetInputError(path_text(str(exc))) from None
            out.append((gid, source, None, path_text(str(exc))))
            continue
        out.append((gid, source, None if why else image, why))
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


def _invalid_pixels(image: np.ndarray, net_input: NetworkInput) -> str:
    """A warning when NaN/inf pixels lie in the network's crop ('' when none)."""
    side = net_input.size
    y0, x0 = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    bad = int((~np.isfinite(image[y0 : y0 + side, x0 : x0 + side])).sum())
    if not bad:
        return ""
    return (f"{bad} NaN/inf pixel(s) in the central {side}x{side} were filled with sky before "
            "scoring: the values may be biased")  # fmt: skip


def network_input(path: str, name: str | None = None) -> NetworkInput:
    """The crop of the combined model at ``path`` (read from its networks); errors name the
    model as ``name`` (what the user gave, not a temporary copy).

    Raises
    ------
    CasnetInputError
        When ``path`` is not the combined model (a single network, or another model).
    """
    try:
        combined = _model(path, name).unwrap_python_model()
        return combined.input
    except CasnetInputError:
        raise  # the trust check's own message (networks.trust) names the model already
    except Exception as exc:  # a Keras flavour has no python model; another pyfunc no .input
        raise CasnetInputError(
            f"{name or path} is not casnet's combined model (models:/casnet@champion takes raw "
            f"stamps; a single network, models:/casnet-<target>, takes crops): {exc}"
        ) from None


def _model(path: str, name: str | None = None):
    """The combined model at ``path``, checked and built without running code from the folder
    (:func:`casnet.networks.trust.load_combined`), once per process."""
    if path not in _MODELS:
        from casnet.networks.trust import load_combined

        model = load_combined(Path(path), name or path)
        model.unwrap_python_model().use_ood(Path(path))  # the out-of-distribution fit, if any
        _MODELS[path] = model
    return _MODELS[path]


def ood_notice(path: str, name: str | None = None) -> str:
    """One line for the user when the combined model at ``path`` has no usable
    out-of-distribution fit (its ``ood_score`` is NaN); '' when it has one."""
    why = _model(path, name).unwrap_python_model().ood_reason
    if not why:
        return ""
    return (
        f"{name or path}: {why}: ood_score is NaN and no stamp is flagged "
        "OUT_OF_DISTRIBUTION (`casnet ood-fit` fits one on simulated galaxies)"
    )


def _ood_flag(score: float, quantile: float) -> str:
    """The reason a stamp is out of distribution ('' when it is not, or not scored)."""
    if not score > 1:  # NaN: no fit
        return ""
    return (
        f"ood_score {score:.3g} > 1: the networks have not seen stamps like this one (above "
        f"the threshold {100 * (1 - quantile):.3g}% of simulated galaxies exceed); the "
        "values are an extrapolation, not to be trusted"
    )


def score_chunk(chunk: WorkUnit, model_path: str, *, hdu: int | str | None = None,
                conventional: MorphologyConfig | None = None, check_scale: bool = True,
                strict: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Rows for one chunk: galaxy_id, source, concentration, concentration_err, asymmetry,
    asymmetry_err (the networks' sigmas; NaN without a Gaussian head), ood_score (NaN without
    the model's out-of-distribution fit, :mod:`casnet.networks.ood`), predict_flag,
    predict_flag_reasons.

    Runs where it is called (a Dask worker or this process); ``model_path`` is a local model
    folder, loaded once per process. ``check_scale``: refuse FITS stamps whose header gives
    another pixel scale than the model's. ``strict``: raise for an input that cannot be read
    (a single file asked for alone).
    """
    expected = model_pixel_scale(model_path) if check_scale else None
    return score_stamps(_read(chunk, hdu, expected, strict), model_path, conventional=conventional)


#: a row's network values: each quantity of the schema and its sigma, in the schema's order
_VALUES = tuple(c for t in SCHEMA for c in (t.name, t.err()))


def score_stamps(items, model_path: str, *,
                 conventional: MorphologyConfig | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Rows (as :func:`score_chunk`'s) for stamps already read: ``items`` yields ``(galaxy_id,
    source, image or None, reason it could not be read or '')``; ``model_path`` is a local
    combined model folder, loaded once per process. The one scoring of ``casnet predict`` and
    of the Python API (:func:`casnet.load_model`)."""
    rows, good = [], []
    # the crop the registered networks were trained on (it travels with the model)
    net_input = network_input(model_path)
    for gid, source, image, reason in items:
        warning = ""
        if image is not None and not reason:
            reason = _check(np.asarray(image), net_input)
            warning = "" if reason else _invalid_pixels(np.asarray(image), net_input)
        flag = PredictFlag.UNUSABLE if reason else PredictFlag.NONE
        if warning:
            flag |= PredictFlag.INVALID_PIXELS
        why = f"UNUSABLE: {reason}" if reason else f"INVALID_PIXELS: {warning}" if warning else ""
        row = {"galaxy_id": gid, "source": source, **dict.fromkeys(_VALUES, math.nan),
               "ood_score": math.nan, "predict_flag": int(flag),
               "predict_flag_reasons": why}  # fmt: skip
        if conventional is not None:
            row.update(_conventional(image, conventional))
        rows.append(row)
        if not reason:
            good.append((len(rows) - 1, np.asarray(image, dtype=np.float32)))
    if good:
        # the ids travel with the stamps: a model that cleans them seeds each galaxy's cleaning
        # by its id, as the pipeline's clean stage does
        model = _model(model_path)
        table = model.predict(
            {"stamp": [g[1] for g in good], "galaxy_id": [rows[g[0]]["galaxy_id"] for g in good]}
        )
        fit = model.unwrap_python_model().ood_fit
        columns = (*_VALUES, "ood_score")
        for j, (i, _) in enumerate(good):
            row = rows[i]
            for name in columns:
                # a model registered before issue 18 returns no _err columns, one without an
                # out-of-distribution fit no ood_score, one made before a quantity was added
                # not that quantity (NaN: the rows of every model have the same columns)
                row[name] = float(table[name].iloc[j]) if name in table else math.nan
            why = _ood_flag(row["ood_score"], fit.quantile) if fit is not None else ""
            if why:
                row["predict_flag"] = int(PredictFlag(row["predict_flag"])
                                          | PredictFlag.OUT_OF_DISTRIBUTION)  # fmt: skip
                reasons = [row["predict_flag_reasons"], f"OUT_OF_DISTRIBUTION: {why}"]
                row["predict_flag_reasons"] = "; ".join(filter(None, reasons))
    return rows


def _conventional(image: np.ndarray | None, cfg: MorphologyConfig) -> dict[str, Any]:
    """Our conventional C and A beside the networks' (``--with-conventional``)."""
    out = {**{t.column("conventional"): math.nan for t in SCHEMA},
           "conventional_flag": -1, "conventional_flag_reasons": "not measured"}  # fmt: skip
    if image is None:
        return out
    from casnet.morphology import measure

    m = measure(np.asarray(image, dtype=np.float64), config=cfg)
    return {**{t.column("conventional"): getattr(m, t.name) for t in SCHEMA},
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
    check_scale: bool = True,
    model_name: str | None = None,
) -> pd.DataFrame:
    """Score every input with the model at ``model_path`` (a local MLflow model folder).

    ``workers=0`` and no ``scheduler`` runs in this process; otherwise chunks go to Dask.
    ``check_scale=False`` scores FITS stamps whatever pixel scale their header gives.
    ``model_name`` is how errors name the model (the URI given, not a temporary copy).

    Raises
    ------
    CasnetInputError
        No input; or a single FITS file given alone that cannot be read, or whose pixel scale is
        not the model's (several inputs get a flagged row each instead).
    """
    from casnet.core.parallel import executor, map_ordered
    from casnet.core.progress import progress_bar

    chunks = plan_chunks(inputs, chunk_size)
    total = sum(len(c) for c in chunks)
    network_input(model_path, model_name)  # not the combined model: one error, before any work
    notice = ood_notice(model_path, model_name)
    if notice:
        # said once, here, whatever the workers: a catalogue without out-of-distribution flags
        # must not look like one whose every galaxy passed the check
        print(f"casnet: {notice}", file=sys.stderr)
    # one file asked for alone fails with its reason, as `casnet measure` does (issue 28: a typo
    # scored "1 galaxies" with exit status 0)
    strict = total == 1 and len(chunks) == 1 and chunks[0].store is None
    rows: list[dict[str, Any]] = []
    with executor(scheduler, workers) as client, progress_bar(
        total, desc="predict", enabled=progress
    ) as bar:  # fmt: skip
        items = ((c, model_path) for c in chunks)

        def run(chunk, path):
            return score_chunk(
                chunk,
                path,
                hdu=hdu,
                conventional=conventional,
                check_scale=check_scale,
                strict=strict,
            )

        for part in map_ordered(client, run, items):
            rows += part
            bar.update(len(part))
    return pd.DataFrame(rows)
