"""Knowing when not to trust the networks: a per-galaxy out-of-distribution score (issue 29).

A network answers every stamp, and a stamp unlike anything it learnt (a star field, an artefact,
a galaxy type the simulator never draws) gets an answer that looks as confident as any other.
The networks' own sigmas (issue 18) do not help: the Gaussian head learnt the scatter of
galaxies like its training set's, and extrapolates it. This module measures instead how far a
stamp lies from the simulated galaxies in each network's *feature space*, the activations that
feed its output layer (the last ``Dense`` layer's input: 256 numbers per network for the
shipped model), computed on exactly the input the network sees (the combined model's cleaning,
crop and normalisation; :meth:`casnet.networks.registry.CasnetModel.features`).

The density is one Gaussian per network (Lee et al. 2018, "A simple unified framework for
detecting out-of-distribution samples"), its mean and covariance fitted on simulated galaxies
with Ledoit-Wolf shrinkage (:class:`sklearn.covariance.LedoitWolf`: ReLU features have dead
units and far more dimensions than a few hundred galaxies pin down; a unit that never fires in
the simulations but fires on a stamp is exactly the signal wanted, and shrinkage gives it a
finite, small variance). The distance of a stamp is the Mahalanobis distance

.. math:: d_t = \\sqrt{(f_t - \\mu_t)^\\top \\Sigma_t^{-1} (f_t - \\mu_t)}

per network ``t``. Each is divided by its ``quantile`` on a held-out simulated set (``scale``:
the two networks' distances live on different scales), the larger of the two kept, and that
divided by its own ``quantile`` on the same set (``threshold``). So

.. math:: \\mathrm{ood\\_score} = \\max_t (d_t / s_t) / T

is 1 at the threshold for every model: with the default ``quantile`` 0.99, 1% of simulated
galaxies like the training set's score above 1, and ``casnet predict`` flags a stamp above 1
:attr:`~casnet.core.flags.PredictFlag.OUT_OF_DISTRIBUTION` (the values are kept: the flag
warns). The mean and covariance are fitted on one half of a simulated set and the scales and
threshold chosen on the other (:func:`split`): a distance is smaller on the galaxies its
covariance was fitted on, and a threshold chosen there would flag more than ``1 - quantile``
of new galaxies.

The fit is a small file in the model folder, :data:`OOD_FILE` (``numpy.savez_compressed``,
read with ``allow_pickle=False``: data, never code), with its provenance in ``meta`` (JSON):
the store, the galaxy counts, the quantile, and a digest of each network's weights
(:func:`weights_digest`), so that a fit is never applied to networks it was not fitted on.
A model without one scores NaN (``casnet predict`` says so once).
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from casnet.core.errors import CasnetInputError
from casnet.core.layout import TARGETS

__all__ = [
    "DEFAULT_QUANTILE",
    "MIN_GALAXIES",
    "OOD_FILE",
    "OOD_SCORE",
    "Density",
    "OodFit",
    "feature_model",
    "fit_density",
    "fit_model",
    "fit_ood",
    "load_fit",
    "mahalanobis",
    "outputs_and_features",
    "read_fit",
    "save_fit",
    "split",
    "weights_digest",
]

#: the fit's file in the model folder (next to ``MLmodel``)
OOD_FILE = "ood.npz"
#: the score's column in the combined model's answer and ``casnet predict``'s catalogue
OOD_SCORE = "ood_score"
#: the share of simulated galaxies below the threshold (1% of them flagged)
DEFAULT_QUANTILE = 0.99
#: galaxies needed for a fit, both halves together (a 99% quantile of fewer than ~50 held-out
#: galaxies is their maximum, and a covariance of 256 features needs at least a few dozen)
MIN_GALAXIES = 40
#: the largest feature space fitted (a flattened convolution stack without a dense layer can
#: have thousands of features: a covariance of 4096^2 floats is 128 MB)
MAX_FEATURES = 4096
#: the most bytes a fit file may hold once decompressed (4 x MAX_FEATURES^2 float32 is 64 MB)
_MAX_BYTES = 1 << 28
_FORMAT = 1


@dataclass(frozen=True)
class Density:
    """One network's Gaussian density of features.

    Attributes
    ----------
    mean : ndarray, shape (d,)
        Mean feature vector of the fitted galaxies.
    whiten : ndarray, shape (d, d)
        ``L^-1`` for the Cholesky factor ``L`` of the shrunk covariance (lower triangular):
        ``d^2 = |whiten (f - mean)|^2``.
    scale : float
        The fit's quantile of the distances of the held-out galaxies.
    """

    mean: np.ndarray
    whiten: np.ndarray
    scale: float = 1.0


@dataclass(frozen=True)
class OodFit:
    """The out-of-distribution fit of a combined model (the module docstring).

    Attributes
    ----------
    densities : dict of str to Density
        Per network (target).
    threshold : float
        The quantile of ``max_t d_t / scale_t`` over the held-out galaxies.
    quantile : float
        The share of held-out galaxies scoring at most 1.
    meta : dict
        Provenance (JSON-able): ``store``, ``n_fit``, ``n_threshold``, ``digests`` (target ->
        :func:`weights_digest`), ``casnet_version``, ``note``.
    """

    densities: dict[str, Density]
    threshold: float
    quantile: float = DEFAULT_QUANTILE
    meta: dict[str, Any] = field(default_factory=dict)

    def raw(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """``max_t d_t / scale_t`` (before the threshold) for features of N stamps."""
        missing = sorted(set(self.densities) - set(features))
        if missing:
            raise ValueError(f"no features of the network(s) {missing}")
        ratios = [mahalanobis(features[t], d.mean, d.whiten) / d.scale
                  for t, d in self.densities.items()]  # fmt: skip
        return np.max(np.stack(ratios), axis=0)

    def score(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """``ood_score`` of N stamps from each network's features ((N, d_t) arrays): 1 at the
        threshold, above 1 out of distribution; 0 at the mean; +inf for non-finite features."""
        return self.raw(features) / self.threshold


def mahalanobis(features: np.ndarray, mean: np.ndarray, whiten: np.ndarray) -> np.ndarray:
    """Mahalanobis distances ``|whiten (f - mean)|`` of the rows of ``features``.

    Parameters
    ----------
    features : ndarray, shape (N, d) or (d,)
    mean : ndarray, shape (d,)
    whiten : ndarray, shape (d, d)
        The inverse Cholesky factor of the covariance (:func:`fit_density`).

    Returns
    -------
    ndarray, shape (N,)
        float64; +inf where a row has a non-finite value (never NaN: such a stamp is not one
        the networks know).
    """
    f = np.atleast_2d(np.asarray(features, dtype=np.float64))
    if f.shape[1] != mean.shape[0]:
        raise ValueError(f"{f.shape[1]} features, the fit has {mean.shape[0]}")
    bad = ~np.isfinite(f).all(axis=1)
    z = np.where(bad[:, None], 0.0, f - mean) @ np.asarray(whiten, np.float64).T
    d = np.sqrt(np.sum(z * z, axis=1))
    d[bad] = np.inf
    return d


def fit_density(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and whitening matrix of ``features`` (N, d): Ledoit-Wolf shrunk covariance.

    Returns
    -------
    (mean, whiten)
        float64 (d,) and (d, d) lower-triangular ``L^-1`` for ``L L^T`` the covariance.

    Raises
    ------
    ValueError
        Fewer than 2 rows, more than :data:`MAX_FEATURES` columns, or non-finite values.
    """
    from scipy.linalg import cholesky, solve_triangular
    from sklearn.covariance import LedoitWolf

    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be (N >= 2, d), got shape {x.shape}")
    if x.shape[1] > MAX_FEATURES:
        raise ValueError(f"{x.shape[1]} features is over {MAX_FEATURES}")
    if not np.isfinite(x).all():
        raise ValueError("features must be finite")
    lw = LedoitWolf().fit(x)
    cov = lw.covariance_
    # every unit constant over the galaxies (all dead) leaves a zero covariance: a floor
    # keeps the factorisation defined (any activity then is far out, as it should be)
    floor = max(float(np.trace(cov)) / cov.shape[0], 1.0) * 1e-9
    lower = cholesky(cov + floor * np.eye(cov.shape[0]), lower=True)
    whiten = solve_triangular(lower, np.eye(cov.shape[0]), lower=True)
    return lw.location_.astype(np.float64), whiten


def _quantile(values: np.ndarray, q: float) -> float:
    # "higher": a value of the sample, so at most 1 - q of the sample lies strictly above it
    return float(np.quantile(values, q, method="higher"))


def fit_ood(
    fit: Mapping[str, np.ndarray],
    held_out: Mapping[str, np.ndarray],
    *,
    quantile: float = DEFAULT_QUANTILE,
    meta: Mapping[str, Any] | None = None,
) -> OodFit:
    """Fit the densities on ``fit`` and choose scales and threshold on ``held_out``.

    Parameters
    ----------
    fit, held_out : mapping of str to ndarray (N, d_t)
        Features per network of two disjoint sets of in-distribution galaxies (the same
        networks in both).
    quantile : float
        Share of ``held_out`` scoring at most 1 (0.5 < quantile < 1).
    meta : mapping, optional
        Provenance stored with the fit (JSON-able).

    Raises
    ------
    ValueError
        Other networks in the two sets, too few galaxies (fewer than 10 in ``held_out``), a
        quantile outside (0.5, 1), or non-finite features in ``fit``.
    """
    if not (isinstance(quantile, float | int) and 0.5 < quantile < 1):
        raise ValueError(f"quantile must be in (0.5, 1), got {quantile!r}")
    if set(fit) != set(held_out) or not fit:
        raise ValueError(f"the two sets have networks {sorted(fit)} and {sorted(held_out)}")
    n_held = {len(np.asarray(v)) for v in held_out.values()}
    if len(n_held) != 1 or min(n_held) < 10:
        raise ValueError(f"held_out needs one count >= 10 galaxies per network, got {n_held}")
    densities, ratios = {}, []
    for t in fit:
        mean, whiten = fit_density(fit[t])
        d = mahalanobis(held_out[t], mean, whiten)
        scale = _quantile(d[np.isfinite(d)], quantile) if np.isfinite(d).any() else 1.0
        scale = scale if scale > 0 else 1.0
        densities[t] = Density(mean, whiten, scale)
        ratios.append(d / scale)
    raw = np.max(np.stack(ratios), axis=0)
    threshold = _quantile(raw, quantile)
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"the held-out scores give no usable threshold ({threshold})")
    return OodFit(densities, threshold, float(quantile), dict(meta or {}))


def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the two halves of ``n`` galaxies: even rows fit, odd rows choose the
    threshold (deterministic, and a store's order is a hash of galaxy ids or the simulator's
    draw order, not sorted by any property)."""
    idx = np.arange(n)
    return idx[0::2], idx[1::2]


def weights_digest(network: Any) -> str:
    """SHA-256 of a Keras network's weights (values and shapes): the same after the network is
    re-saved without its optimizer (:func:`casnet.networks.pretrained.export`), different for any
    other weights."""
    h = hashlib.sha256()
    for w in network.get_weights():
        a = np.ascontiguousarray(np.asarray(w, dtype=np.float32))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --- features: the network's own graph, two outputs ------------------------------------------


def feature_model(network: Any) -> Any:
    """A Keras model of ``network``'s graph with two outputs: its output and the activations
    fed to its last ``Dense`` layer (the output layer; at inference dropout is the identity,
    so these are the last hidden layer's activations, flattened).

    Raises
    ------
    ValueError
        When the network has no ``Dense`` layer.
    """
    import keras

    dense = [layer for layer in network.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError(f"network {network.name!r} has no Dense layer to take features from")
    return keras.Model(network.inputs, [network.outputs[0], dense[-1].input])


def outputs_and_features(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One forward pass of a :func:`feature_model` on a batch ``x`` (the compiled predict step,
    as :func:`casnet.networks.inference.predict_array`): (outputs, features (N, d))."""
    out, feats = model.predict_on_batch(x)
    feats = np.asarray(feats, dtype=np.float32)
    return np.asarray(out), feats.reshape(len(feats), -1)


# --- the file ---------------------------------------------------------------------------------


def save_fit(fit: OodFit, folder: str | Path) -> Path:
    """Write ``fit`` to ``folder`` / :data:`OOD_FILE` (compressed NumPy arrays and JSON
    metadata; no pickle). The file is replaced whole (written beside it, then renamed)."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(_FORMAT),
        "threshold": np.array(fit.threshold, dtype=np.float64),
        "quantile": np.array(fit.quantile, dtype=np.float64),
        "targets": np.array(list(fit.densities)),
        "meta": np.array(json.dumps(fit.meta, sort_keys=True, default=str)),
    }
    for t, d in fit.densities.items():
        arrays[f"{t}_mean"] = np.asarray(d.mean, np.float32)
        # float32: the distances need ~3 digits; a triangular matrix compresses to half
        arrays[f"{t}_whiten"] = np.asarray(d.whiten, np.float32)
        arrays[f"{t}_scale"] = np.array(d.scale, dtype=np.float64)
    path = Path(folder) / OOD_FILE
    tmp = path.with_name(f".{OOD_FILE}.tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    tmp.replace(path)
    return path


def read_fit(path: str | Path) -> OodFit:
    """The fit in file ``path`` (:func:`save_fit`'s), read as data only (``allow_pickle=False``,
    sizes checked before anything is decompressed).

    Raises
    ------
    CasnetInputError
        Not such a file (unreadable, over the size limit, missing or inconsistent arrays).
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            if sum(i.file_size for i in zf.infolist()) > _MAX_BYTES:
                raise ValueError(f"over {_MAX_BYTES} bytes decompressed")
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"]) != _FORMAT:
                raise ValueError(f"format {int(z['format'])}, this casnet reads {_FORMAT}")
            targets = [str(t) for t in z["targets"]]
            densities = {}
            for t in targets:
                mean = np.asarray(z[f"{t}_mean"], np.float64)
                whiten = np.asarray(z[f"{t}_whiten"], np.float64)
                scale = float(z[f"{t}_scale"])
                if mean.ndim != 1 or whiten.shape != (mean.size, mean.size) or not scale > 0:
                    raise ValueError(f"inconsistent arrays for {t}")
                densities[t] = Density(mean, whiten, scale)
            fit = OodFit(densities, float(z["threshold"]), float(z["quantile"]),
                         json.loads(str(z["meta"])))  # fmt: skip
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        text = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise CasnetInputError(f"{path} is not casnet's out-of-distribution fit ({text})") from None
    if not (fit.threshold > 0 and set(targets) <= set(TARGETS)):
        raise CasnetInputError(f"{path} is not casnet's out-of-distribution fit (threshold "
                               f"{fit.threshold}, networks {targets})")  # fmt: skip
    return fit


def load_fit(folder: str | Path, networks: Mapping[str, Any] | None = None
             ) -> tuple[OodFit | None, str]:  # fmt: skip
    """The fit of the model in ``folder``, checked against its ``networks``: ``(fit, '')``, or
    ``(None, why)`` when there is none or it cannot be used (unreadable, or fitted on other
    weights: :func:`weights_digest`). Never raises for the file: a model without a usable fit
    still scores (the ``ood_score`` is NaN)."""
    path = Path(folder) / OOD_FILE
    if not path.is_file():
        return None, f"the model has no out-of-distribution fit ({OOD_FILE})"
    try:
        fit = read_fit(path)
    except CasnetInputError as exc:
        return None, str(exc)
    if networks is not None:
        if set(networks) != set(fit.densities):
            return None, f"{OOD_FILE} is for the networks {sorted(fit.densities)}"
        digests = fit.meta.get("digests") or {}
        for t, net in networks.items():
            if digests.get(t) and digests[t] != weights_digest(net):
                return None, (f"{OOD_FILE} was fitted on another {t} network (its weights "
                              "differ): fit it again")  # fmt: skip
    return fit, ""


# --- fitting a model folder (the I/O edge) -----------------------------------------------------


def fit_model(
    model: str | Path,
    stores: Sequence[str | Path],
    *,
    quantile: float = DEFAULT_QUANTILE,
    note: str = "",
    write: bool = True,
) -> OodFit:
    """Fit the out-of-distribution score of the combined model in folder ``model`` on the
    galaxies of casnet ``stores`` (simulated, like the networks' training set: the selected or
    validation store of a simulated run; raw stamps are cleaned by the model as in scoring), and
    write it into the folder (``write``).

    The stores' galaxies are pooled in order and split by :func:`split`. ``note``: how the
    stores were made, kept in the fit's ``meta``.

    Raises
    ------
    CasnetInputError
        ``model`` is not casnet's combined model, a store cannot be read, or the stores hold
        fewer than :data:`MIN_GALAXIES` galaxies.
    """
    from casnet import __version__
    from casnet.data.io.store import StampStore
    from casnet.networks.trust import load_combined

    model = Path(model)
    combined = load_combined(model, str(model)).unwrap_python_model()
    images, ids = [], []
    for store in stores:
        s = StampStore(store)  # a missing or damaged store: its own error, naming it
        images += list(np.asarray(s.array("image")[:], dtype=np.float32))
        ids += [str(i) for i in s.catalog["galaxy_id"]]
    if len(images) < MIN_GALAXIES:
        where = ", ".join(map(str, stores))
        raise CasnetInputError(
            f"{len(images)} galaxies in {where}: an out-of-distribution fit needs at least "
            f"{MIN_GALAXIES}"
        )
    features = combined.features({"stamp": images, "galaxy_id": ids})
    first, second = split(len(images))
    info = {"stores": [str(s) for s in stores], "n_fit": len(first), "n_threshold": len(second),
            "quantile": quantile, "casnet_version": __version__, "note": note,
            "features": {t: int(f.shape[1]) for t, f in features.items()},
            "digests": {t: weights_digest(n) for t, n in combined.networks.items()}}  # fmt: skip
    try:
        fit = fit_ood({t: f[first] for t, f in features.items()},
                      {t: f[second] for t, f in features.items()}, quantile=quantile,
                      meta=info)  # fmt: skip
    except ValueError as exc:
        raise CasnetInputError(f"cannot fit the out-of-distribution score: {exc}") from None
    if write:
        save_fit(fit, model)
    return fit
