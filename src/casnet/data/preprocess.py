"""The one preprocessing of network inputs: crop to 60x60 and normalise to max = 1.

Tohill et al. 2021 Sec. 3.1: stamps are cropped to 60x60 pixels centred on the target and divided
by their maximum; that is the only preprocessing at prediction time too. The data pipeline
(``select``), training, serving and evaluation all call :func:`crop_normalise`: two copies of it
would let training and serving drift apart silently.

:class:`NetworkInput` is what a network sees, read in one place by every stage: ``select`` makes
its crops (``select.crop_size``), training builds the network and its signature for the size of
the stores it trains on, and the served model reads it back from its networks' input shape, so a
network trained on 64 px crops is served with 64 px crops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from casnet.core.errors import CasnetInputError

__all__ = ["CROP_SIZE", "NetworkInput", "crop_normalise"]

#: side of the network input (paper: 60 px at 0.06"/px)
CROP_SIZE = 60


def crop_normalise(images: np.ndarray, *, size: int = CROP_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Crop stamps to ``size`` x ``size`` about their centre and divide each by its maximum.

    Parameters
    ----------
    images : ndarray, shape (H, W) or (N, H, W)
        Stamps with the target at the centre (H, W >= ``size``); NaN marks missing pixels.
    size : int
        Output side. The crop starts at ``(H - size) // 2``, so a 101 px stamp keeps pixels
        20..79 and its centre pixel (50) stays within half a pixel of the crop centre.

    Returns
    -------
    (crops, ok)
        ``crops``: float32, shape (N, size, size) (or (size, size) for one stamp), each divided by
        its maximum; NaN pixels become 0 (after normalising). ``ok``: bool per stamp (a bool for
        one stamp), False where the crop has no finite positive maximum (all zeros then).

    Raises
    ------
    CasnetInputError
        When the stamps are not 2-D/3-D or smaller than ``size``.
    """
    arr = np.asarray(images, dtype=np.float32)
    single = arr.ndim == 2
    if single:
        arr = arr[None]
    if arr.ndim != 3:
        raise CasnetInputError(f"stamps must be 2-D or 3-D (N, H, W), got shape {arr.shape}")
    _, h, w = arr.shape
    if h < size or w < size:
        raise CasnetInputError(f"stamps of {h}x{w} px are smaller than the {size}x{size} crop")
    y0, x0 = (h - size) // 2, (w - size) // 2
    crop = arr[:, y0 : y0 + size, x0 : x0 + size]
    with np.errstate(invalid="ignore"):
        peak = np.nanmax(np.where(np.isfinite(crop), crop, -np.inf), axis=(1, 2))
    ok = np.isfinite(peak) & (peak > 0)
    scale = np.where(ok, peak, 1.0).astype(np.float32)
    out = np.where(np.isfinite(crop), crop / scale[:, None, None], 0.0).astype(np.float32)
    out[~ok] = 0.0
    return (out[0], bool(ok[0])) if single else (out, ok)


@dataclass(frozen=True)
class NetworkInput:
    """The network input: a ``size`` x ``size`` crop about the stamp centre divided by its
    maximum, one channel (Tohill et al. 2021 Sec. 3.1: 60 px)."""

    size: int = CROP_SIZE

    def __post_init__(self) -> None:
        if not (isinstance(self.size, int) and self.size >= 1):
            raise CasnetInputError(f"network input size must be an integer >= 1, got {self.size!r}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """One input of the network: (size, size, 1)."""
        return (self.size, self.size, 1)

    def prepare(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`crop_normalise` to this size."""
        return crop_normalise(images, size=self.size)

    @classmethod
    def of_stamps(cls, stamp_shape: tuple[int, ...]) -> NetworkInput:
        """The input of stores of network-ready stamps (``select``'s crops) of ``stamp_shape``.

        Raises
        ------
        CasnetInputError
            When the stamps are not square.
        """
        h, w = (int(v) for v in stamp_shape[-2:])
        if h != w:
            raise CasnetInputError(f"network inputs must be square, the stamps are {h}x{w}")
        return cls(h)

    @classmethod
    def of_network(cls, network: Any) -> NetworkInput:
        """The input a Keras network was built for (its ``input_shape``: (None, s, s, 1)).

        Raises
        ------
        CasnetInputError
            When the network does not take square one-channel images.
        """
        shape = tuple(network.input_shape)
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 1 or shape[1] is None:
            raise CasnetInputError(f"a CASNET network takes (N, s, s, 1) inputs, this one {shape}")
        return cls(int(shape[1]))
