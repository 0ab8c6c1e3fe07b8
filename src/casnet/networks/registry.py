"""Registered models: the two networks, the combined ``casnet`` model, aliases, pulling.

- ``casnet-concentration`` / ``casnet-asymmetry``: one Keras network each (logged by
  :func:`casnet.networks.train.train`). A new version gets the alias ``challenger``; it takes
  ``champion`` only if its RMSE on the validation set beats the current champion's *on the same
  validation set* (the champion is re-scored on it, so a changed dataset cannot make a stale
  figure win), or when promotion is forced. The comparison is logged on the training run.
- ``casnet``: a pyfunc model wrapping one version of each network (recorded as tags) that takes
  raw stamps, applies :func:`casnet.data.preprocess.crop_normalise` (the pipeline's own function)
  and
  returns a table with ``concentration`` and ``asymmetry``. A new version is registered whenever
  a network's champion changes, and becomes the ``champion`` of ``casnet``.

MLflow stages are deprecated; casnet uses aliases only.
"""

from __future__ import annotations

import base64
import io
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from casnet.core.config import short_repr
from casnet.core.errors import CasnetError, CasnetInputError, CasnetStoreError
from casnet.core.layout import COMBINED_MODEL, ERR, EXPERIMENTS, NETWORK_MODELS
from casnet.core.tracking import require_store, tracking_uri, use_store
from casnet.data.clean import clean_stamp
from casnet.data.io.store import StampStore
from casnet.data.preprocess import NetworkInput
from casnet.data.settings import CleanConfig
from casnet.networks import limits, ood
from casnet.networks import metrics as _metrics  # noqa: F401  (registers the custom loss/metric)
from casnet.networks import recalibration as _recalibration  # noqa: F401  (MeanMap)
from casnet.networks import uncertainty as _uncertainty  # noqa: F401  (SigmaScale, Gaussian loss)
from casnet.networks.dataset import OVERRIDE_TAG
from casnet.networks.inference import predict_mean_sigma
from casnet.networks.trust import load_combined, model_targets
from casnet.networks.uncertainty import mean_and_sigma

__all__ = [
    "COMBINED",
    "ERR",
    "NETWORKS",
    "OOD_SCORE",
    "CasnetModel",
    "Promotion",
    "check_promotable",
    "combined_signature",
    "load",
    "parse_stamps",
    "pull",
    "register_combined",
    "register_network",
]

NETWORKS = NETWORK_MODELS
COMBINED = COMBINED_MODEL
CHAMPION, CHALLENGER = "champion", "challenger"
#: the output column of the out-of-distribution score (:mod:`casnet.networks.ood`)
OOD_SCORE = ood.OOD_SCORE
_UNREAD = object()  # a CasnetModel whose out-of-distribution fit has not been looked for yet


@dataclass(frozen=True)
class Promotion:
    """Outcome of registering a network version."""

    name: str
    version: str
    val_rmse: float
    champion_version: str | None
    champion_val_rmse: float | None
    promoted: bool
    reason: str


def _client(root: Path | None = None):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri(root), registry_uri=tracking_uri(root))


def _champion(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def register_network(
    run_id: str,
    model_uri: str,
    target: str,
    *,
    val_store: str | Path,
    val_rmse: float,
    promote: bool = False,
    root: Path | None = None,
) -> Promotion:
    """Register a trained network, alias it ``challenger``, and promote it if it wins."""
    import mlflow

    from casnet.core.scores import scores
    from casnet.networks.inference import predict_store

    name = NETWORKS[target]
    client = _client(root)
    # a network trained on evaluation-only galaxies is never registered (issue 29)
    check_promotable(client.get_run(run_id).data.tags, name=f"run {run_id}")
    champion = _champion(client, name)
    with use_store(root):
        version = str(mlflow.register_model(model_uri, name).version)
    client.set_registered_model_alias(name, CHALLENGER, version)
    client.set_model_version_tag(name, version, "val_rmse", f"{val_rmse:.6g}")
    client.set_model_version_tag(name, version, "run_id", run_id)
    _describe_network(client, name, version, target, run_id, val_store)
    champ_rmse = None
    if champion is None:
        promoted, reason = True, "no champion yet"
    else:
        # re-score the champion on this run's validation set: the same galaxies for both
        with use_store(root):
            old = mlflow.keras.load_model(
                f"models:/{name}/{champion.version}", load_model_kwargs={"compile": False}
            )
        champ_rmse = scores(*predict_store(old, val_store, target))["rmse"]
        if promote:
            promoted, reason = True, "promotion forced"
        elif val_rmse < champ_rmse:
            promoted, reason = True, f"val RMSE {val_rmse:.4f} < champion's {champ_rmse:.4f}"
        else:
            promoted, reason = False, f"val RMSE {val_rmse:.4f} >= champion's {champ_rmse:.4f}"
        client.log_metric(run_id, "champion_val_rmse", champ_rmse)
        client.set_tag(run_id, "casnet.compared_with", f"{name}/{champion.version}")
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    client.set_tag(run_id, "casnet.registered", f"{name}/{version}")
    client.set_tag(run_id, "casnet.promoted", str(promoted).lower())
    client.set_tag(run_id, "casnet.promotion_reason", reason)
    return Promotion(name, version, val_rmse, None if champion is None else str(champion.version),
                     champ_rmse, promoted, reason)  # fmt: skip


#: below this many validation galaxies a registration says it is a demo-scale smoke test
DEMO_SCALE_VAL = 500


def _describe_network(client, name: str, version: str, target: str, run_id: str,
                      val_store: str | Path) -> None:  # fmt: skip
    """The registered model's and the version's descriptions in the MLflow UI (issue 31): what
    the network takes and returns, and this version's run, scores and validation set."""
    client.update_registered_model(
        name,
        description=f"casnet's {target} network: takes network-ready crops (N, s, s, 1), "
        "divided by their maximum (the combined model `casnet` takes raw stamps); returns the "
        f"{target} and, with a Gaussian head, its sigma. Champion: the best validation RMSE.",
    )
    metrics = client.get_run(run_id).data.metrics
    n_val = len(StampStore(val_store))
    scale = (f" Demo scale ({n_val} validation galaxies): a smoke test of the chain, not a "
             "science result." if n_val < DEMO_SCALE_VAL else "")  # fmt: skip
    scores = ", ".join(f"{label} {metrics[key]:.4g}" for label, key in
                       (("val RMSE", "final_val_rmse"), ("test RMSE", "test_rmse"),
                        ("test MAE", "test_mae"), ("test r", "test_pearson_r"))
                       if key in metrics)  # fmt: skip
    client.update_model_version(name, version, description=f"Run {run_id}; {scores} (against "
                                f"what it learnt); validated on {val_store}.{scale}")  # fmt: skip


# --- the combined model ---------------------------------------------------------------------


def _bad(message: str):
    """An input error the scoring server answers with HTTP 400 (an error raised otherwise inside a
    pyfunc ``predict`` becomes HTTP 500)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _read_fits_bytes(data: Any, index: int, budget: limits.PixelBudget) -> np.ndarray:
    """The first 2-D image of FITS file bytes (or their base64 text).

    Its size is checked from the header before any pixel is decoded
    (:func:`casnet.data.io.fits.check_declared_size`): while serving against ``budget`` (HTTP
    413 over the limit), in process against the reader's own limit,
    :data:`casnet.data.io.fits.MAX_PIXELS`; and, for a plain (not gzip'ed) file, the bytes it
    declares against the bytes sent, so a small upload declaring a huge image is refused.

    Raises
    ------
    RequestTooLarge
        While serving, over the pixel limits.
    ValueError
        Anything else (CasnetInputError is one): not FITS, no 2-D image, an invalid or untrue
        size.
    """
    from astropy.io import fits

    from casnet.data.io.fits import MAX_PIXELS, check_declared_size

    if isinstance(data, str):
        data = base64.b64decode(data)
    raw = bytes(data)
    # a plain FITS file starts with SIMPLE: its length bounds its data; a gzip'ed one's does not
    plain = raw[:6] == b"SIMPLE"
    with fits.open(io.BytesIO(raw)) as hdul:
        for hdu in hdul:
            if not hdu.is_image or hdu.header.get("NAXIS", 0) != 2:
                continue
            source = f"FITS {index}"
            shape = check_declared_size(hdu.header, source=source, max_pixels=None)
            if 0 in shape:
                continue
            budget.check(index, shape)  # while serving: 413 over the limits, whatever else
            info = hdu.fileinfo()
            # astropy shows a tile-compressed HDU's image header: its size is the decompressed
            # image's, not the bytes stored, so only the pixel limits apply
            bounded = plain and info is not None and not isinstance(hdu, fits.CompImageHDU)
            check_declared_size(
                hdu.header, source=source,
                file_size=len(raw) - info["datLoc"] if bounded else None,
                max_pixels=None if budget.active else MAX_PIXELS,
            )  # fmt: skip
            return np.asarray(hdu.data, dtype=np.float32)
    raise ValueError("no 2-D image HDU")


#: the paper's 60 px crop: the default where no network says otherwise
_PAPER_INPUT = NetworkInput()


def parse_stamps(
    model_input: Any, net_input: NetworkInput = _PAPER_INPUT
) -> tuple[list[np.ndarray], list[str] | None]:
    """Stamps (and galaxy ids) from what a caller or the scoring server hands the model.

    Accepted: an array (H, W), (N, H, W) or (N, H, W, 1); a list of 2-D arrays (sizes may
    differ); a dict or DataFrame with ``stamp`` (arrays) or ``fits`` (FITS file bytes, or base64
    text in JSON) and optionally ``galaxy_id``. Each stamp must hold ``net_input``'s crop.

    While serving, the stamps are counted and their pixels checked against
    :mod:`casnet.networks.limits` before they are decoded or copied (a FITS stamp from its
    header).

    Raises
    ------
    RequestTooLarge
        While serving, a request over the stamp or pixel limits (HTTP 413).
    MlflowException
        INVALID_PARAMETER_VALUE (HTTP 400 when served) for anything else.
    """
    ids = None
    budget = limits.PixelBudget()
    counted = False  # FITS stamps are counted from their headers, as they are read
    if isinstance(model_input, pd.DataFrame):
        model_input = {c: model_input[c].tolist() for c in model_input.columns}
    if isinstance(model_input, dict):
        if "galaxy_id" in model_input:
            ids = [str(i) for i in np.asarray(model_input["galaxy_id"]).reshape(-1)]
        if "fits" in model_input:
            try:
                blobs = np.asarray(model_input["fits"], dtype=object).reshape(-1)
            except Exception as exc:
                raise _bad(f"unreadable FITS in 'fits': {exc}") from None
            limits.check_size(len(blobs))  # before any is decoded
            stamps = []
            for i, blob in enumerate(blobs):
                try:
                    stamps.append(_read_fits_bytes(blob, i, budget))
                except limits.RequestTooLarge:
                    raise
                except Exception as exc:
                    text = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
                    raise _bad(f"unreadable FITS in 'fits' (item {i}): {text}") from None
            counted = True
        elif "stamp" in model_input:
            stamps = model_input["stamp"]
        elif len(model_input) == 1 or set(model_input) == {"inputs"}:
            stamps = next(iter(model_input.values()))
        else:
            raise _bad(f"expected a 'stamp' or 'fits' field, got {sorted(model_input)}")
    else:
        stamps = model_input
    if isinstance(stamps, np.ndarray) and stamps.dtype != object:
        arr = stamps
        if arr.ndim == 4 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim == 2:
            arr = arr[None]
        stamps = list(arr) if arr.ndim == 3 else None
    else:
        try:
            items = stamps if isinstance(stamps, (list, tuple)) else list(np.asarray(stamps))
            stamps = [np.asarray(s) for s in items]
        except Exception:
            stamps = None
    if stamps is None:
        raise _bad("stamps must be 2-D images: an array (N, H, W) or a list of (H, W) arrays")
    if len(stamps) == 0:
        raise _bad("empty batch: no stamps given")
    out = []
    for i, s in enumerate(stamps):
        s = np.asarray(s)
        if s.ndim == 3 and s.shape[-1] == 1:
            s = s[..., 0]
        if s.ndim != 2:
            raise _bad(f"stamp {i}: expected a 2-D image, got shape {s.shape}")
        if not counted:
            budget.check(i, s.shape)  # before the copies and the cleaning
        if not np.issubdtype(s.dtype, np.number):
            try:
                s = s.astype(np.float32)
            except (TypeError, ValueError):
                raise _bad(f"stamp {i}: non-numeric values") from None
        if min(s.shape) < net_input.size:
            raise _bad(f"stamp {i}: {s.shape[0]}x{s.shape[1]} px is smaller than "
                       f"{net_input.size}x{net_input.size}")  # fmt: skip
        out.append(s.astype(np.float32))
    if ids is not None and len(ids) != len(out):
        raise _bad(f"{len(ids)} galaxy ids for {len(out)} stamps")
    return out, ids


def network_inputs(
    stamps: list[np.ndarray], net_input: NetworkInput = _PAPER_INPUT
) -> tuple[np.ndarray, np.ndarray]:
    """``net_input.prepare`` of stamps of any sizes >= its side: (N, s, s, 1) float32 and ok
    flags."""
    crops = np.empty((len(stamps), net_input.size, net_input.size), dtype=np.float32)
    ok = np.zeros(len(stamps), dtype=bool)
    shapes = {s.shape for s in stamps}
    if len(shapes) == 1:
        crops, ok = net_input.prepare(np.stack(stamps))
    else:
        for i, s in enumerate(stamps):
            crops[i], ok[i] = net_input.prepare(s)
    return crops[..., None], ok


def _drop_type_hint_notice(shown):
    """A ``warnings.showwarning`` that drops MLflow 3's notice about a PythonModel whose predict
    has no type hint (issue 31: with raw ANSI colour codes, on every user's console) and shows
    every other warning with ``shown``. MLflow issues it at the class's definition under its own
    ``simplefilter("once")``, which no warnings filter can override, so :class:`CasnetModel` is
    defined with this in place. casnet's predict takes several layouts (:func:`parse_stamps`) and
    checks them itself; a type hint would make MLflow validate a single one."""

    def show(message, *args, **kwargs):
        if "Add type hints to the `predict` method" not in str(message):
            shown(message, *args, **kwargs)

    return show


_shown, warnings.showwarning = warnings.showwarning, _drop_type_hint_notice(warnings.showwarning)


class CasnetModel(mlflow.pyfunc.PythonModel):
    """The combined pyfunc model.

    Holds the two Keras networks; ``predict`` takes raw stamps (see :func:`parse_stamps`) and
    returns a DataFrame with ``galaxy_id`` (when given), ``concentration`` and ``asymmetry``,
    each followed by its standard deviation (``concentration_err``, ``asymmetry_err``) when its
    network has a Gaussian head (issue 18); a point network's answer has no ``_err`` column
    (rather than NaN, which JSON cannot carry).

    With ``clean`` (the galclean settings of the data the networks were trained on, carried in
    the model's ``model_config``) a stamp larger than the networks' crop is cleaned first with
    :func:`casnet.data.clean.clean_stamp`, the function of the pipeline's clean stage, seeded by
    its ``galaxy_id`` when the request gives one: the served model sees what the trained one saw
    (issue 17). A stamp of the crop's size is taken as network-ready (the pipeline's own stamps).

    With an out-of-distribution fit in the model folder (:data:`casnet.networks.ood.OOD_FILE`,
    issue 29) the answer has an ``ood_score`` column too: how unlike the simulated galaxies
    each stamp looks to the networks, 1 at the fit's threshold (:mod:`casnet.networks.ood`),
    from the same forward pass (the networks' outputs are unchanged). Without a fit there is no
    such column (rather than NaN, as for ``_err``).
    """

    #: the out-of-distribution fit (:class:`casnet.networks.ood.OodFit` or None), read from the
    #: model folder on first use (:meth:`use_ood`); class attributes, because the pickles of
    #: models registered before issue 29 have no such attribute
    ood_fit: Any = _UNREAD
    #: why there is no usable fit ('' when there is)
    ood_reason: str = ""

    def __init__(self, networks: dict[str, Any] | None = None, batch_size: int = 512,
                 clean: CleanConfig | None = None) -> None:  # fmt: skip
        self.networks = networks or {}
        self.batch_size = batch_size
        self.clean = clean

    @property
    def targets(self) -> tuple[str, ...]:
        """The quantities this model has networks for, in the order of its outputs (its own,
        recorded when it was registered: :func:`casnet.networks.trust.model_targets`)."""
        return tuple(self.networks)

    @property
    def input(self) -> NetworkInput:
        """The crop the networks were trained on, read from their input shape (both the same:
        the size travels with the registered networks, not with this code).

        Raises
        ------
        MlflowException
            INVALID_PARAMETER_VALUE when the two networks take different sizes.
        """
        sizes = {t: NetworkInput.of_network(net) for t, net in self.networks.items()}
        if len(set(sizes.values())) != 1:
            found = ", ".join(f"{t} {n.size} px" for t, n in sizes.items())
            raise _bad(f"the networks take different input sizes ({found})")
        return next(iter(sizes.values()))

    def load_context(self, context) -> None:
        import mlflow

        config = getattr(context, "model_config", None) or {}
        # inference only: no optimizer state or loss needed; the model's own quantities
        self.networks = {
            t: mlflow.keras.load_model(context.artifacts[t], load_model_kwargs={"compile": False})
            for t in model_targets(context.artifacts, config)
        }
        settings = config.get("clean")
        self.clean = CleanConfig.model_validate(settings) if settings else None
        self.use_ood(_model_folder(context))

    def use_ood(self, folder: str | Path | None) -> None:
        """Read the out-of-distribution fit of the model folder ``folder`` (None: the model has
        none), checked against these networks (:func:`casnet.networks.ood.load_fit`); sets
        :attr:`ood_fit` and :attr:`ood_reason`."""
        if folder is None:
            self.ood_fit, self.ood_reason = None, "the model's folder is not known"
        else:
            self.ood_fit, self.ood_reason = ood.load_fit(folder, self.networks)

    def _ood(self, context) -> Any:
        """The fit, looked for in the folder of ``context``'s artifacts on first use (a model
        built by :func:`casnet.networks.trust.load_combined` has no ``load_context`` call)."""
        if self.ood_fit is _UNREAD:
            self.use_ood(_model_folder(context))
        return self.ood_fit

    def _inputs(self, model_input, deadline: limits.Deadline | None = None
                ) -> tuple[np.ndarray, list[str] | None]:  # fmt: skip
        """The networks' input (N, s, s, 1) of the stamps a caller gives, and their ids."""
        net_input = self.input
        stamps, ids = parse_stamps(model_input, net_input)
        # while serving: a size limit (413) and the server's timeout (issue 19)
        limits.check_size(len(stamps))
        check = None if deadline is None else deadline.check
        if self.clean is not None:
            stamps = clean_stamps(stamps, ids, self.clean, net_input, check=check)
        x, ok = network_inputs(stamps, net_input)
        if not ok.all():
            bad = ", ".join(str(i) for i in np.flatnonzero(~ok)[:10])
            side = net_input.size
            raise _bad(f"stamps with no finite positive pixel in the central "
                       f"{side}x{side} (NaN-only or empty): {bad}")  # fmt: skip
        return x, ids

    def _run(self, target: str, x: np.ndarray, batch: int, deadline: limits.Deadline,
             features: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # fmt: skip
        """(values, sigmas, features or None) of one network on ``x``, ``batch`` at a time;
        with ``features``, from one pass of the network's graph with two outputs
        (:func:`casnet.networks.ood.feature_model`)."""
        net = self.networks[target]
        if not features:
            parts = []
            for lo in range(0, len(x), batch):
                deadline.check(lo, len(x))
                parts.append(predict_mean_sigma(net, x[lo : lo + batch], batch))
            mu, sigma = (np.concatenate(p) for p in zip(*parts, strict=True))
            return mu, sigma, None
        models = self.__dict__.setdefault("_feature_models", {})
        if target not in models:
            models[target] = ood.feature_model(net)
        outs, feats = [], []
        for lo in range(0, len(x), batch):
            deadline.check(lo, len(x))
            out, feat = ood.outputs_and_features(models[target], x[lo : lo + batch])
            outs.append(out)
            feats.append(feat)
        mu, sigma = mean_and_sigma(np.concatenate(outs))
        return mu, sigma, np.concatenate(feats)

    def features(self, model_input, *, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Each network's features (:func:`casnet.networks.ood.feature_model`: the activations
        fed to its output layer), (N, d) float32 per target, of the stamps a caller gives
        (:func:`parse_stamps`), cleaned, cropped and normalised as :meth:`predict` does: the
        input of the out-of-distribution fit (:func:`casnet.networks.ood.fit_model`)."""
        x, _ = self._inputs(model_input)
        batch = batch_size or self.batch_size
        deadline = limits.Deadline()
        return {t: self._run(t, x, batch, deadline, features=True)[2] for t in self.targets}

    def predict(self, context, model_input, params: dict | None = None) -> pd.DataFrame:
        deadline = limits.Deadline()
        x, ids = self._inputs(model_input, deadline)
        raw = (params or {}).get("batch_size", self.batch_size)
        try:
            batch = int(raw)
        except (TypeError, ValueError):
            raise _bad(f"batch_size must be an integer >= 1, got {short_repr(raw)}") from None
        if batch < 1:
            raise _bad(f"batch_size must be an integer >= 1, got {short_repr(raw)}")
        table = {} if ids is None else {"galaxy_id": ids}
        fit = self._ood(context)
        feats = {}
        for target in self.targets:
            mu, sigma, feats[target] = self._run(target, x, batch, deadline, fit is not None)
            table[target] = mu
            if self.networks[target].output_shape[-1] == 2:  # a Gaussian head (issue 18)
                table[f"{target}{ERR}"] = sigma
        if fit is not None:
            table[OOD_SCORE] = fit.score(feats)
        return pd.DataFrame(table)


warnings.showwarning = _shown  # CasnetModel is defined: every warning is shown again


def _model_folder(context) -> Path | None:
    """The folder of the model whose ``context`` this is: two levels above a network's artifact
    folder (``<model>/artifacts/<target>``, as MLflow lays out a pyfunc model), when it holds
    an ``MLmodel``; None otherwise."""
    artifacts = getattr(context, "artifacts", None) or {}
    first = next(iter(artifacts.values()), None) if isinstance(artifacts, dict) else None
    if not first:
        return None
    folder = Path(first).resolve().parents[1]
    return folder if (folder / "MLmodel").is_file() else None


def clean_stamps(stamps: list[np.ndarray], ids: list[str] | None, clean: CleanConfig,
                 net_input: NetworkInput = _PAPER_INPUT, *,
                 check: Callable[[int, int], None] | None = None) -> list[np.ndarray]:  # fmt: skip
    """The stamps larger than the networks' crop galclean'ed as the pipeline cleans them
    (:func:`casnet.data.clean.clean_stamp`, seeded by ``ids`` when given); crop-sized stamps
    unchanged (network-ready). ``check(done, total)`` is called before each stamp (the served
    model's deadline)."""
    side = (net_input.size, net_input.size)
    out = []
    for i, s in enumerate(stamps):
        if check is not None:
            check(i, len(stamps))
        if s.shape == side:
            out.append(s)
            continue
        gid = None if ids is None else ids[i]
        out.append(
            clean_stamp(np.asarray(s, dtype=np.float64), clean, gid).image.astype(np.float32)
        )
    return out


def _download_networks(versions: dict[str, str], dest: Path, root: Path | None,
                       names: dict[str, str] | None = None,
                       ) -> tuple[dict[str, str], dict[str, bool]]:  # fmt: skip
    """Download each network version (of the registered models ``names``, target -> name;
    default :data:`NETWORKS`) into ``dest``; returns (target -> local folder, target -> whether
    it has a Gaussian head, read from its MLmodel's signature: two outputs)."""
    names = names or NETWORKS
    import mlflow
    from mlflow.models import Model

    local, gaussian = {}, {}
    with use_store(root):
        for target, version in versions.items():
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{names[target]}/{version}", dst_path=str(dest / target)
            )
            signature = Model.load(path).signature
            outputs = signature.outputs.inputs if signature is not None else []
            local[target] = path
            gaussian[target] = bool(outputs) and tuple(outputs[0].shape)[-1] == 2
    return local, gaussian


def combined_signature(gaussian: dict[str, bool], *, ood_score: bool = False):
    """The combined model's signature: no input schema (stamps come as arrays, lists, base64
    FITS or a table of them, see :func:`parse_stamps`), the output columns (``galaxy_id`` when
    given, each quantity and, for a network with a Gaussian head, its ``_err``; issue 18; with
    ``ood_score``, the optional :data:`OOD_SCORE`, issue 29) and the ``batch_size`` parameter
    (MLflow passes inference params only when the signature declares them)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    cols = [ColSpec("string", "galaxy_id", required=False)]
    for t in gaussian:  # the model's quantities, in its outputs' order
        cols.append(ColSpec("double", t))
        if gaussian.get(t):
            cols.append(ColSpec("double", f"{t}{ERR}"))
    if ood_score:
        cols.append(ColSpec("double", OOD_SCORE, required=False))
    params = ParamSchema([ParamSpec("batch_size", "long", 512)])
    return ModelSignature(inputs=None, outputs=Schema(cols), params=params)


def register_combined(
    versions: dict[str, str] | None = None,
    *,
    root: Path | None = None,
    champion: bool = True,
    clean: CleanConfig | None = None,
    ood_store: str | Path | None = None,
    ood_quantile: float = ood.DEFAULT_QUANTILE,
    ood_file: str | Path | None = None,
    networks: dict[str, str] | None = None,
    name: str = COMBINED,
) -> str:
    """Log and register ``casnet`` wrapping the given network versions (default: champions).

    ``networks``: target -> the registered model the versions are of (default :data:`NETWORKS`);
    ``name``: the combined model's registered name (default ``casnet``; the science run
    registers its truth-trained networks as ``casnet-truth``, issue 30).

    ``clean``: the galclean settings of the networks' training data; the served model cleans raw
    stamps with them (:class:`CasnetModel`). None: it only crops and normalises.

    ``ood_store``: a store of simulated galaxies like the networks' training set (the validation
    store): the out-of-distribution score is fitted on it (:func:`casnet.networks.ood.fit_model`,
    threshold at ``ood_quantile``) and its file added to the registered model. A fit that cannot
    be made (too few galaxies) leaves the model without one: the version's tag ``casnet.ood``
    says why. None: no fit (``casnet ood-fit`` makes one for a model folder later).
    ``ood_file``: instead, an existing fit of these networks (:data:`casnet.networks.ood.OOD_FILE`
    of a model folder, e.g. the pretrained model's) added as it is; a fit of other weights is
    never applied (:func:`casnet.networks.ood.load_fit` checks when the model is loaded).

    Returns
    -------
    str
        The new version of ``casnet``; aliased ``challenger``, and ``champion`` when
        ``champion`` is true.
    """
    import mlflow

    from casnet.core.tracking import ensure_experiment, git_commit
    from casnet.networks.mlmodel import model_requirements

    client = _client(root)
    networks = networks or NETWORKS
    if versions is None:
        versions = {}
        for target, network in networks.items():
            champ = _champion(client, network)
            if champ is None:
                raise CasnetInputError(f"{network} has no champion: train and register it first")
            versions[target] = champ.version
    exp = ensure_experiment(EXPERIMENTS["registry"], root)
    # the model's own quantities, in its outputs' order (issue 32: a model loads by them, not
    # by the code's TARGETS, so it keeps loading when a quantity is added)
    config = {"targets": list(versions)}
    if clean is not None:
        config["clean"] = clean.model_dump(mode="json")
    tags = {f"casnet.{t}_version": str(v) for t, v in versions.items()}
    run_tags = {**tags, "casnet.git_commit": git_commit(root)}
    with (
        tempfile.TemporaryDirectory(prefix="casnet-networks-") as tmp,
        use_store(root),
        mlflow.start_run(experiment_id=exp, run_name="combined", tags=run_tags),
    ):
        artifacts, gaussian = _download_networks(versions, Path(tmp), root, networks)
        # no input example (the signature says what the model takes; MLflow's notice about it
        # came with raw ANSI escapes on every console, issue 31)
        warnings.filterwarnings("ignore", message=".*An input example was not provided",
                                category=UserWarning)  # fmt: skip
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=CasnetModel(),
            artifacts=artifacts,
            registered_model_name=name,
            signature=combined_signature(gaussian, ood_score=bool(ood_store or ood_file)),
            pip_requirements=model_requirements(combined=True),
            model_config=config,
        )
    version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.update_registered_model(
        name,
        description="casnet's combined model: takes raw stamps (N, H, W) centred on "
        "their targets at the networks' pixel scale (0.06\"/px for casnet's), at least the "
        "networks' crop (60 px) on a side; cleans (galclean), crops and normalises them itself; "
        "returns concentration and asymmetry with their sigmas and, with its fit, ood_score.",
    )
    wraps = ", ".join(f"{networks[t]} version {v}" for t, v in versions.items())
    client.update_model_version(name, version, description=f"Wraps {wraps}.")
    if ood_store is not None:
        _fit_ood(client, info.model_id, version, ood_store, ood_quantile, root, name)
    elif ood_file is not None:
        fit = ood.read_fit(ood_file)  # refused unless it is a fit file
        with tempfile.TemporaryDirectory(prefix="casnet-ood-") as tmp:
            ood.save_fit(fit, tmp)
            client.log_model_artifacts(info.model_id, tmp)
        client.set_model_version_tag(name, version, "casnet.ood",
                                     f"copied from {ood_file}")  # fmt: skip
    client.set_registered_model_alias(name, CHALLENGER, version)
    if champion:
        client.set_registered_model_alias(name, CHAMPION, version)
    return version


def _fit_ood(client, model_id: str, version: str, store: str | Path, quantile: float,
             root: Path | None, name: str = COMBINED) -> None:  # fmt: skip
    """Fit the out-of-distribution score of the registered ``name`` version on ``store`` and
    add its file to the logged model (the registered version's artifacts), tagging the version
    ``casnet.ood`` with the outcome."""
    with tempfile.TemporaryDirectory(prefix="casnet-ood-") as tmp:
        local = _download(f"models:/{name}/{version}", Path(tmp) / "model", root, "fit")
        note = f"fitted when {name} version {version} was registered, on {store}"
        try:
            fit = ood.fit_model(local, [store], quantile=quantile, note=note, write=False)
        except CasnetInputError as exc:
            client.set_model_version_tag(name, version, "casnet.ood",
                                         f"not fitted: {str(exc)[:400]}")  # fmt: skip
            return
        upload = Path(tmp) / "upload"
        upload.mkdir()
        ood.save_fit(fit, upload)
        client.log_model_artifacts(model_id, str(upload))
    client.set_model_version_tag(name, version, "casnet.ood",
                                 f"fitted on {store}: threshold {fit.threshold:.4g} at quantile "
                                 f"{fit.quantile:g} ({fit.meta['n_fit']} + "
                                 f"{fit.meta['n_threshold']} galaxies)")  # fmt: skip


def _is_registered(uri: str) -> bool:
    return uri.startswith(("models:/", "runs:/"))


def load(uri: str = f"models:/{COMBINED}@{CHAMPION}", root: Path | None = None):
    """Load the combined model (from any working directory): a ``models:/`` or ``runs:/`` URI
    of the project store, or a local model folder.

    A registered model is downloaded to a temporary folder first. Nothing shipped in the model
    runs: the folder is checked and the model built by
    :func:`casnet.networks.trust.load_combined` (``python_model.pkl`` is not unpickled; the
    networks load in Keras's safe mode). Messages name ``uri``, never the download folder.

    Returns
    -------
    mlflow.pyfunc.PyFuncModel
        As ``mlflow.pyfunc.load_model`` returns it: ``predict``, ``unwrap_python_model()`` (the
        :class:`CasnetModel`), ``metadata``.

    Raises
    ------
    CasnetStoreError
        The store is missing or damaged, or the version's artifacts are gone.
    CasnetInputError
        ``uri`` names no model, a folder that is not an MLflow model, one network rather than
        the combined ``casnet`` model, or a model casnet did not write
        (:func:`casnet.networks.trust.check_model`).
    """
    if not _is_registered(uri):
        if not (Path(uri) / "MLmodel").is_file():
            raise CasnetInputError(f"{uri} is not an MLflow model folder (no MLmodel file in it): "
                                   f"give models:/{COMBINED}@{CHAMPION} or a folder from `casnet "
                                   "pull`")  # fmt: skip
        return _with_ood(load_combined(Path(uri), uri), Path(uri))
    require_store(root)
    # the networks are in memory once loaded: the download is not needed afterwards
    with tempfile.TemporaryDirectory(prefix="casnet-model-") as tmp:
        path = _download(uri, Path(tmp), root, "load")
        return _with_ood(load_combined(path, uri), path)


def _with_ood(model, folder: Path):
    """``model`` (a loaded combined model) with the out-of-distribution fit of ``folder`` read
    now, while the folder exists (a download is removed once loaded)."""
    model.unwrap_python_model().use_ood(folder)
    return model


def _resolves(uri: str, root: Path | None) -> bool:
    """Whether the registry knows the version ``uri`` names (``models:/NAME@ALIAS`` or
    ``models:/NAME/VERSION``)."""
    from mlflow.exceptions import MlflowException

    ref = uri.removeprefix("models:/")
    if not uri.startswith("models:/"):
        return False
    client = _client(root)
    try:
        if "@" in ref:
            client.get_model_version_by_alias(*ref.split("@", 1))
        else:
            client.get_model_version(*ref.split("/", 1))
    except (MlflowException, TypeError):
        return False
    return True


def _load_error(uri: str, root: Path | None, exc: Exception, verb: str = "load",
                dest: Path | None = None) -> CasnetError:  # fmt: skip
    """A one-line error for a model that does not load: the version is registered but its
    artifacts are gone (a store error), or there is no such model, alias or version.

    MLflow's message may name ``dest``, the folder the model was being downloaded to (a
    temporary one when loading): it is replaced by ``uri``, what the user gave.
    """
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    if dest is not None:
        for form in {str(dest), str(Path(dest).resolve())}:
            text = text.replace(form, f"<{uri}>")
    text = text[:300]
    if _resolves(uri, root):
        return CasnetStoreError(f"{uri} is registered in {tracking_uri(root)} but its "
                                f"artifacts cannot be read ({text}): they were moved or "
                                "deleted; register it again (casnet train)")  # fmt: skip
    return CasnetInputError(f"cannot {verb} {uri} from {tracking_uri(root)}: {text}")


def _download(uri: str, dest: Path, root: Path | None, verb: str) -> Path:
    """Download ``uri`` into ``dest`` (which exists); the model's folder. Errors name ``uri``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        with use_store(root):
            path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                            dst_path=str(dest)))  # fmt: skip
    except (MlflowException, OSError) as exc:  # OSError: the registry names artifacts gone
        raise _load_error(uri, root, exc, verb, dest) from None
    if not (path / "MLmodel").is_file():
        raise CasnetStoreError(f"{uri} is registered in {tracking_uri(root)} but its artifacts "
                               "are gone (the download holds no MLmodel); register it again "
                               "(casnet train)")  # fmt: skip
    return path


def pull(uri: str, dest: str | Path, root: Path | None = None) -> Path:
    """Download a registered model (``models:/name@alias`` or ``models:/name/version``).

    Nothing in it is loaded or run (:func:`casnet.networks.trust.check_model` checks a
    download before it is loaded; :func:`load` does). Messages name ``uri``, not ``dest``.

    Raises
    ------
    CasnetStoreError
        The store is missing or damaged, or the version's artifacts are gone (an empty download
        is an error, not a model).
    CasnetInputError
        No such model or alias.
    """
    require_store(root)
    Path(dest).mkdir(parents=True, exist_ok=True)
    return _download(uri, Path(dest), root, "pull")


def check_promotable(tags: dict[str, str], *, name: str = "this run") -> None:
    """Refuse to register or promote the network of a run trained on evaluation-only galaxies.

    ``tags``: the training run's tags (``MlflowClient().get_run(run_id).data.tags``). Such a run
    logs no model (:func:`train`), so there is nothing to register; this says why, for a
    registry that is asked anyway.

    Raises
    ------
    CasnetInputError
        The run carries ``casnet.evaluation_only_override=true``.
    """
    if str(tags.get(OVERRIDE_TAG, "")).lower() == "true":
        raise CasnetInputError(f"{name} was trained on evaluation-only galaxies (the real suite's, "
                               f"tag {OVERRIDE_TAG}): it is never registered, promoted or "
                               "shipped")  # fmt: skip
