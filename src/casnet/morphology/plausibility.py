"""Values no galaxy can give: the last check of :func:`casnet.morphology.measure`.

Every step of the measurement can run to the end on a stamp and still return numbers that are
not a galaxy's: a Petrosian radius of half a pixel, no light inside R_p, r20 beyond r80, an
asymmetry of -2 (issue 28: a faint clumpy galaxy gave all of these with flag 0). Such a row is
flagged :attr:`~casnet.core.flags.Flag.UNPHYSICAL` with one reason per value (its name, value and
bound); the values are kept for diagnosis, and the select stage never makes them labels.

The bounds below are physical limits, not quality cuts: a noisy but possible value (C 1.7 at
SNR_p 1, A -0.05) is not flagged; the S/N and size cuts of the select stage (SNR_p > 2, R_p > 5 px,
Tohill et al. 2021 Sec. 3.1) deal with those.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from casnet.morphology.measurement import Measurement

__all__ = ["A_MIN", "C_MAX", "C_MIN", "R20_MIN", "R_PETRO_MIN", "unphysical"]

#: smallest Petrosian semi-major axis (px): a point source through a Gaussian PSF has R_p ~ 1.0
#: FWHM at eta = 0.2 (eta(x) = x e^-x / (1 - e^-x) = 0.2 at x = r^2 / 2 sigma^2 = 2.65), and a
#: PSF sampled at least at Nyquist has FWHM >= 2 px (CANDELS F160W at 0.06"/px: ~3 px). R_p
#: below 1 px means eta "fell" at the first radii the search samples: noise at the centre
R_PETRO_MIN = 1.0
#: smallest r20 (px): the most compact light a stamp holds, one pixel of uniform light, has
#: r20 = sqrt(0.2 / pi) = 0.25 px (more on an elliptical aperture)
R20_MIN = 0.25
#: C = 5 log10(r80 / r20) of a uniform disk, the flattest profile that does not rise outwards
#: (r20 = sqrt(0.2) R, r80 = sqrt(0.8) R): 5 log10(2) = 1.505. Lower needs light that rises
#: outwards (a ring, rare) or noise; the simulated population measures C >= 1.96 (400 stamps)
C_MIN = 5.0 * math.log10(2.0)
#: analytic Sersic C inside 1.5 R_p (eta 0.2, annulus 0.8-1.25 r): n = 4 4.24, n = 10 5.25,
#: n = 20 5.91; a PSF only lowers it, and nucleated disks reach 4.0-4.6 (design guide Sec. 8)
C_MAX = 6.0
#: A = sum|I - I180| / sum|I| - A_bkg: the raw term is >= 0, so A < 0 comes only from the sky
#: term exceeding the noise's own share of the raw term, by about sigma_A. On 400 simulated
#: stamps down to SNR_p 0.2 (2026-12-07) the most negative A was -0.054 (sigma_A 0.04); -0.2 is
#: 4-5 sigma_A below 0 for the faintest of them: a background term that no longer describes the
#: aperture. Peaks of correlated noise alone, detected as a 'source', give -0.15 to -0.59
A_MIN = -0.2


def _bad(value: float) -> bool:
    return not math.isfinite(value)


def unphysical(m: Measurement) -> list[str]:
    """The values of ``m`` no galaxy can give, one reason each (empty: none).

    Parameters
    ----------
    m : Measurement
        A measurement whose values were measured (no fatal flag: fatal rows are NaN by design
        and are not checked).

    Returns
    -------
    list of str
        Each reason names the quantity, its value and the bound it breaks, e.g.
        ``"r_petro 0.5 px < 1 px: smaller than a PSF-convolved point source"``.
    """
    reasons = []
    if _bad(m.r_petro) or m.r_petro < R_PETRO_MIN:
        reasons.append(
            f"r_petro {m.r_petro:.3g} px < {R_PETRO_MIN:g} px: smaller than a PSF-convolved "
            "point source"
        )
    # measure() stops with the fatal NON_POSITIVE_FLUX before a total <= 0 gets here; the check
    # keeps this function a complete statement of what a galaxy's row must satisfy
    if _bad(m.flux) or m.flux <= 0:
        reasons.append(f"flux {m.flux:.3g} <= 0: no light inside the aperture")
    if _bad(m.snr_p) or m.snr_p <= 0:
        reasons.append(f"snr_p {m.snr_p:.3g} <= 0: no light inside R_p")
    radii_ok = not (_bad(m.r20) or _bad(m.r80) or m.r20 < R20_MIN or m.r80 <= m.r20)
    if not radii_ok:
        reasons.append(
            f"r20 {m.r20:.3g} px, r80 {m.r80:.3g} px: not {R20_MIN:g} px <= r20 < r80 "
            "(r20 below a single pixel's, or the light does not grow outwards)"
        )
    elif _bad(m.concentration) or not C_MIN <= m.concentration <= C_MAX:
        # with r20 < r80 already reported, C would only repeat it
        reasons.append(
            f"concentration {m.concentration:.3g} outside [{C_MIN:.2f}, {C_MAX:g}] "
            "(a uniform disk to a Sersic n = 20 profile)"
        )
    if _bad(m.asymmetry):
        reasons.append(f"asymmetry {m.asymmetry} is not finite")
    elif m.asymmetry < A_MIN:
        reasons.append(
            f"asymmetry {m.asymmetry:.3g} < {A_MIN:g}: the background term "
            f"({m.asymmetry_bkg:.3g}) exceeds the raw asymmetry ({m.asymmetry_raw:.3g}) by far "
            "more than noise can"
        )
    return reasons
