"""Every quality-flag family of the project, and the catalogue columns each lives in.

A stage never raises for one bad galaxy: each problem is a bit of its stage's family plus a
human-readable reason. :data:`FAMILIES` lists them by stage; :func:`flag_columns` names their
columns, ``<stage>_flag`` (the bits) and ``<stage>_flag_reasons`` (``'; '``-separated
``NAME: reason``), except the measurement's own, ``flag`` / ``flag_reasons``: the columns every
catalogue user filters on, as statmorph and MORFOMETRYKA name theirs.

- :class:`Flag` -- the conventional measurement (:func:`casnet.morphology.measure`); bits in
  :data:`FATAL` mean the values are NaN, the others are warnings on a value that was measured,
  except UNPHYSICAL: the values are kept but are not a galaxy's (:data:`BAD_VALUES`).
- :class:`CleanFlag` -- galclean (:func:`casnet.data.clean.galclean`).
- :class:`IngestFlag` -- reading real FITS (:mod:`casnet.data.ingest`).
- :class:`PredictFlag` -- ``casnet predict`` (:mod:`casnet.networks.predict`).
"""

from __future__ import annotations

import enum

__all__ = [
    "BAD_VALUES",
    "FAMILIES",
    "FATAL",
    "CleanFlag",
    "Flag",
    "FlagCollector",
    "IngestFlag",
    "PredictFlag",
    "flag_columns",
]


class Flag(enum.IntFlag):
    """Bitmask of measurement problems (stable numbers: they are stored in catalogues)."""

    NONE = 0
    BAD_INPUT = 1  #: not a finite 2-D image large enough to measure (fatal)
    INVALID_PIXELS = 2  #: NaN/inf or user-masked pixels were excluded
    NO_SOURCE = 4  #: nothing detected above the threshold (fatal)
    AMBIGUOUS_TARGET = 8  #: two sources are equally close to the stamp centre
    EDGE = 16  #: the target segment touches the stamp edge
    NO_PETROSIAN = 32  #: eta never fell to the threshold inside the stamp (fatal)
    APERTURE_CLIPPED = 64  #: a measurement aperture extends beyond the stamp
    NON_POSITIVE_FLUX = 128  #: the light inside the aperture is <= 0 (fatal)
    CENTRE_SHIFT = 256  #: the asymmetry centre left the allowed region around the centroid
    NOT_CONVERGED = 512  #: the asymmetry-centre minimiser did not converge
    FEW_SKY_CELLS = 1024  #: too few sky cells for the asymmetry background term
    SKY_FAILED = 2048  #: sky statistics undefined (constant image, no sky pixels) (fatal)
    #: the galaxy fills the stamp: too few sky pixels beyond ``sky_exclude_rp`` R_p for a sky
    #: whose error is below the total flux's (the sky then holds the galaxy's wings, C is low)
    STAMP_FILLED = 4096
    #: a measured value lies outside the range any galaxy can give (R_p below a pixel, no light
    #: inside R_p, r20 >= r80, A far below 0, C outside the Sersic range; bounds and why in
    #: :mod:`casnet.morphology.plausibility`): the measurement failed although every step ran.
    #: Not fatal -- the values are kept for diagnosis -- but in :data:`BAD_VALUES`
    UNPHYSICAL = 8192


#: Flags that leave no usable value (C, A and radii are NaN).
FATAL = Flag.BAD_INPUT | Flag.NO_SOURCE | Flag.NO_PETROSIAN | Flag.NON_POSITIVE_FLUX
FATAL |= Flag.SKY_FAILED

#: Flags whose values are not a galaxy's, never to be used as a label or a reference: the fatal
#: ones (NaN) and UNPHYSICAL (values kept for diagnosis)
BAD_VALUES = FATAL | Flag.UNPHYSICAL


class CleanFlag(enum.IntFlag):
    """Bitmask of cleaning problems (stable numbers: they are stored in catalogues)."""

    NONE = 0
    #: no segment at, or within ``target_dilate`` px of, the centre: nothing protected, every
    #: detected source is treated as a neighbour
    CENTRE_IS_SKY = 1
    #: light of another source is left in the stamp: the target's detection segment holds more than
    #: one deblended source, or another segment reaches into the protected zone of the target
    BLENDED = 2
    #: too few sky pixels: replacements drawn from a Gaussian of the sky mean and sigma
    NO_SKY = 4
    #: NaN/inf pixels were present; they were replaced by sky draws too (even inside the target)
    INVALID_PIXELS = 8
    #: nothing could be cleaned (no valid pixel, constant image): the image is returned as is
    FAILED = 16


class IngestFlag(enum.IntFlag):
    """Bitmask of ingest problems (stable numbers: they are stored in catalogues)."""

    NONE = 0
    #: the stamp extends past the mosaic edge and is NaN-padded there
    PADDED = 1


class PredictFlag(enum.IntFlag):
    """Bitmask of ``casnet predict`` problems (stable numbers: they are stored in catalogues)."""

    NONE = 0
    #: the input could not be scored (unreadable, too small for the network's crop, no finite
    #: positive pixel in it; a pixel scale in its header other than the model's): C and A are NaN
    UNUSABLE = 1
    #: NaN/inf pixels in the network's crop: the model's cleaning filled them with sky before
    #: scoring (a warning: the values are given, and may be biased), as ``casnet measure`` flags
    INVALID_PIXELS = 2
    #: the stamp is unlike the simulated galaxies the networks learnt: its ``ood_score`` (the
    #: networks' features' distance from those of simulated galaxies, :mod:`casnet.networks.ood`)
    #: is above the model's threshold, which 1% of simulated galaxies exceed. A warning: the
    #: values are given, but are an extrapolation not to be trusted
    OUT_OF_DISTRIBUTION = 4


#: the flag family of each stage that raises flags
FAMILIES: dict[str, type[enum.IntFlag]] = {
    "measure": Flag,
    "clean": CleanFlag,
    "ingest": IngestFlag,
    "predict": PredictFlag,
}


def flag_columns(stage: str) -> tuple[str, str]:
    """The catalogue columns of ``stage``'s flags: (bits, reasons)."""
    if stage not in FAMILIES:
        raise KeyError(f"no flag family for stage {stage!r}; stages: {', '.join(FAMILIES)}")
    if stage == "measure":
        return "flag", "flag_reasons"
    return f"{stage}_flag", f"{stage}_flag_reasons"


class FlagCollector:
    """Accumulates flags and their reasons while one galaxy is processed.

    Parameters
    ----------
    none : enum.IntFlag
        The empty flag of the family collected (default :attr:`Flag.NONE`; the cleaning uses
        :class:`casnet.data.clean.CleanFlag`).
    fatal : enum.IntFlag
        Bits that leave no usable value (default :data:`FATAL`).
    """

    def __init__(self, none: enum.IntFlag = Flag.NONE, fatal: enum.IntFlag = FATAL) -> None:
        self.flag = none
        self._fatal = fatal
        self._reasons: list[str] = []

    def add(self, flag: enum.IntFlag, reason: str) -> None:
        """Raise ``flag`` with a reason (a flag raised twice keeps both reasons)."""
        self.flag |= flag
        self._reasons.append(f"{flag.name}: {reason}")

    @property
    def fatal(self) -> bool:
        """True once a fatal bit is raised."""
        return bool(self.flag & self._fatal)

    @property
    def reasons(self) -> str:
        """All reasons, ``'; '``-separated (empty string when clean)."""
        return "; ".join(self._reasons)
