"""Conventional CAS measurement (the role MORFOMETRYKA plays in Tohill et al. 2021 Sec. 2.2-2.3).

One entry point, :func:`measure`, built from one module per concept: :mod:`.sky`,
:mod:`.segmentation`, :mod:`.shape`, :mod:`.growth`, :mod:`.petrosian`, :mod:`.concentration`,
:mod:`.rotate`, :mod:`.asymmetry`, :mod:`.snr`, :mod:`.uncertainty`, :mod:`.flags`.
"""

from casnet.morphology.flags import FATAL, Flag
from casnet.morphology.measure import COLUMNS, Measurement, measure

__all__ = ["COLUMNS", "FATAL", "Flag", "Measurement", "measure"]
