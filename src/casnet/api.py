"""The Python API a user starts from (issue 31): :func:`measure` and :func:`load_model`.

Both are what the command line does, on numpy arrays::

    import casnet

    m = casnet.measure(image)                 # conventional C, A, SNR_p, errors, flags
    m.concentration, m.asymmetry, m.flag      # m.to_dict(): a row of ``casnet measure``
    model = casnet.load_model()   # the packaged default; "pretrained", "pretrained-truth",
                                  # "models:/casnet@champion", or a model folder
    table = model.predict(stamps, ids=["g1", "g2"])

``model.predict`` gives the rows ``casnet predict`` writes: ``galaxy_id``, ``concentration`` and
``asymmetry`` with their sigmas (``*_err``), ``ood_score``, ``predict_flag`` and
``predict_flag_reasons`` (every stamp a row; one the networks cannot take has NaN values and the
reason). Stamps are raw cutouts centred on the target at the model's pixel scale (0.06"/px for
casnet's networks), at least the networks' crop (60 px) on a side; the model cleans, crops and
normalises them itself.
"""

from __future__ import annotations

import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from casnet.core.errors import CasnetInputError
from casnet.morphology.measurement import measure  # the conventional measurement, as it is

__all__ = ["Model", "load_model", "measure"]


class Model:
    """A combined casnet model (both networks and their cleaning) ready to score arrays.

    Made by :func:`load_model`; ``name`` is what was asked for, ``path`` the local model folder
    (a registered model is downloaded to a temporary folder that lives as long as this object).
    """

    def __init__(self, name: str, path: Path, *, keep: Any = None) -> None:
        self.name = name
        self.path = Path(path)
        self._keep = keep  # the temporary folder of a downloaded model

    def __repr__(self) -> str:
        return f"casnet.Model({self.name!r})"

    @property
    def crop_size(self) -> int:
        """The networks' input side in pixels (a stamp must be at least this large)."""
        from casnet.networks.predict import network_input

        return network_input(str(self.path), self.name).size

    def predict(self, stamps, ids: Sequence[str] | None = None, *,
                conventional: bool = False) -> pd.DataFrame:  # fmt: skip
        """C and A of ``stamps`` (an (N, H, W) array or a sequence of 2-D arrays).

        Parameters
        ----------
        stamps : array-like
            Raw cutouts centred on their targets.
        ids : sequence of str, optional
            One id per stamp (``galaxy_id``; default ``"0"``, ``"1"``, ...); the cleaning of
            each stamp is seeded by it, as the pipeline's is.
        conventional : bool
            Also the conventional C and A of each stamp (``conventional_*`` columns).

        Returns
        -------
        DataFrame
            One row per stamp, in order (module docstring).

        Raises
        ------
        CasnetInputError
            ``ids`` of another length than ``stamps``, or stamps that are not images.
        """
        from casnet.networks.predict import score_stamps

        images = _as_stamps(stamps)
        if ids is None:
            ids = [str(i) for i in range(len(images))]
        ids = [str(i) for i in ids]
        if len(ids) != len(images):
            raise CasnetInputError(f"{len(ids)} ids for {len(images)} stamps")
        items = ((gid, "array", image, "") for gid, image in zip(ids, images, strict=True))
        cfg = None
        if conventional:
            from casnet.morphology.settings import MorphologyConfig

            cfg = MorphologyConfig()
        rows = score_stamps(items, str(self.path), conventional=cfg)
        table = pd.DataFrame(rows)
        return table.drop(columns=["source"]) if "source" in table else table


def _as_stamps(stamps) -> list[np.ndarray]:
    """``stamps`` as a list of float32 images (a 2-D array is one stamp)."""
    if isinstance(stamps, np.ndarray):
        if stamps.ndim == 2:
            return [stamps.astype(np.float32)]
        if stamps.ndim == 3:
            return [s.astype(np.float32) for s in stamps]
        raise CasnetInputError(f"stamps must be 2-D or 3-D (N, H, W), got shape {stamps.shape}")
    try:
        return [np.asarray(s, dtype=np.float32) for s in stamps]
    except (TypeError, ValueError) as exc:
        raise CasnetInputError(f"stamps must be numeric arrays: {exc}") from None


def load_model(model: str | None = None, *, root: Path | None = None) -> Model:
    """The combined model ``model``, checked, ready for :meth:`Model.predict`.

    Parameters
    ----------
    model : str, optional
        ``"pretrained"`` (the packaged model that learnt the conventional labels, the paper's),
        ``"pretrained-truth"`` (the packaged model that learnt the noise-free values), a
        registered model of the project's MLflow store (``models:/casnet@champion``,
        ``models:/casnet/3``), or a local model folder (from ``casnet pull``). None: the packaged
        default (:func:`casnet.networks.pretrained.default_name`: the one better on the real
        galaxies; each model's card, ``MODEL_CARD.md`` beside it, says what its sigma means).
    root : Path, optional
        The project whose MLflow store holds registered models (default: the current project).

    Raises
    ------
    CasnetInputError
        No such model, or a folder that is not casnet's combined model (nothing in it is run:
        :func:`casnet.networks.trust.check_model`).
    CasnetStoreError
        A registered model asked for where the store is missing or damaged.
    """
    from casnet.networks import pretrained as shipped
    from casnet.networks.predict import network_input
    from casnet.networks.trust import check_model

    if model is None:
        model = shipped.default_name()
    keep = None
    if model in shipped.NAMES:
        local = shipped.model_path(shipped.folder_of(model))
    elif str(model).startswith("models:/"):
        from casnet.networks import registry

        keep = tempfile.TemporaryDirectory(prefix="casnet-model-")
        local = registry.pull(str(model), keep.name, root)
    else:
        local = Path(model)
        if not local.is_dir():
            raise CasnetInputError(f"no model {model!r}: give 'pretrained', 'pretrained-truth', "
                                   "a models:/ URI or a model folder")  # fmt: skip
    check_model(Path(local), str(model))
    network_input(str(local), str(model))  # the combined model, loaded once: errors now
    out = Model(str(model), Path(local), keep=keep)
    if keep is not None:
        weakref.finalize(out, keep.cleanup)
    return out
