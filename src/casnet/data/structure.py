"""Resolved structure of simulated galaxies: star-forming clumps, spiral arms, lopsided light,
tidal tails and shells.

A smooth Sersic profile is exactly point-symmetric: its asymmetry is 0 whatever its size, so a
simulation made of them teaches a network that A is noise. The galaxies of CANDELS F160W that
Tohill et al. (2021, Figs. 1-3) measure have A up to ~0.5 because of structure: clumps of star
formation a few hundred pc to ~1 kpc across (0.05-0.2" at z ~ 1-3, resolved or marginally resolved
by the 0.18" F160W PSF; Guo et al. 2015), spiral arms at low z, lopsided disks, and the tails,
shells and companions of mergers. Each builder here returns GalSim profiles in arcsec (the frame of
:mod:`casnet.data.simulate`) and the numbers it drew, so the catalogue records every structure.

Positions and shapes are drawn in the disk plane and projected with the disk's own
``shear(q, beta)`` (GalSim shears preserve area: the major axis grows by 1/sqrt(q)), so clumps
and arms lie in the disk, not in a circle around it.
"""

from __future__ import annotations

import math

import galsim
import numpy as np

__all__ = [
    "CLUMP_MAX_RADIUS",
    "GSPARAMS",
    "arc",
    "clumps",
    "lopsided_component",
    "project",
    "spiral_arms",
]

#: clumps lie inside this disk-plane radius, in units of the disk's half-light radius (issue 15:
#: "inside ~1-2 r_half"; clumpy galaxies in CANDELS have their clumps within the disk's light)
CLUMP_MAX_RADIUS = 1.6
#: arms fade in inside this fraction of the disk scale length (a bar or bulge region, no arms)
_ARM_INNER = 0.6
#: limits the FFT size GalSim may use for a 101x101 stamp (accuracy stays well below the noise)
GSPARAMS = galsim.GSParams(folding_threshold=5e-3, maximum_fft_size=4096)
_GSPARAMS = GSPARAMS


def project(x: np.ndarray, y: np.ndarray, q: float, beta_deg: float) -> tuple[np.ndarray, ...]:
    """Disk-plane offsets (") to sky offsets, as GalSim's ``shear(q=q, beta=beta)`` maps them."""
    m = galsim.Shear(q=q, beta=beta_deg * galsim.degrees).getMatrix()
    x, y = np.asarray(x, float), np.asarray(y, float)
    return m[0, 0] * x + m[0, 1] * y, m[1, 0] * x + m[1, 1] * y


def clumps(
    rng: np.random.Generator, flux: float, r_half: float, q: float, beta_deg: float
) -> tuple[galsim.GSObject, dict]:
    """2-8 resolved star-forming clumps holding ``flux`` in total.

    Flux shares come from a Dirichlet(0.6) draw, so one to three clumps dominate as in CANDELS
    clumpy galaxies (Guo et al. 2015); each clump is a Gaussian of intrinsic FWHM 0.06-0.25" (1-4
    px at 0.06"/px: around the PSF's 0.18", so some are resolved); disk-plane radii are uniform
    in 0.15-1.6 r_half (a light-weighted draw would pile them onto the bulge).

    Returns
    -------
    profile, info
        ``info`` has ``n_clumps``, ``clump_x`` / ``clump_y`` (sky offsets, "), ``clump_r_disk``
        (disk-plane radius / r_half) and ``clump_fwhm`` (").
    """
    n = int(rng.integers(2, 9))
    shares = rng.dirichlet(np.full(n, 0.6))
    radius = r_half * rng.uniform(0.15, CLUMP_MAX_RADIUS, size=n)
    angle = rng.uniform(0.0, 2 * np.pi, size=n)
    fwhm = rng.uniform(0.06, 0.25, size=n)
    x, y = project(radius * np.cos(angle), radius * np.sin(angle), q, beta_deg)
    parts = [
        galsim.Gaussian(fwhm=float(w), flux=float(flux * s), gsparams=_GSPARAMS).shift(
            float(dx), float(dy)
        )
        for w, s, dx, dy in zip(fwhm, shares, x, y, strict=True)
    ]
    info = {
        "n_clumps": n,
        "clump_x": x,
        "clump_y": y,
        "clump_r_disk": radius / r_half,
        "clump_fwhm": fwhm,
    }
    return galsim.Add(parts), info


def spiral_arms(
    rng: np.random.Generator,
    flux: float,
    r_half: float,
    q: float,
    beta_deg: float,
    pixel_scale: float,
    max_extent: float,
) -> tuple[galsim.GSObject, dict]:
    """Logarithmic spiral arms on an exponential disk, holding ``flux``.

    The face-on light is exp(-r/h) x ((1 + cos(m (theta - ln(r/h) / tan(pitch)) - phi)) / 2)^k:
    m = 2 arms (3 for a quarter), pitch 12-30 deg (Sa-Sc; Davis et al. 2014 find 10-35 deg), arm
    sharpness k 2-4, faded in inside 0.6 h. Drawn at half the pixel scale and handed to GalSim as
    an ``InterpolatedImage``, then projected with the disk's shear.

    Parameters
    ----------
    max_extent : float
        Half-side (") of the face-on grid (the stamp's half-side is enough).
    """
    h = r_half / 1.678  # exponential scale length of a disk of half-light radius r_half
    m = 3 if rng.random() < 0.25 else 2
    pitch = float(rng.uniform(12.0, 30.0))
    sharp = float(rng.uniform(2.0, 4.0))
    phase = float(rng.uniform(0.0, 2 * np.pi))
    step = pixel_scale / 2
    half = min(max_extent, 7.0 * h)
    n = 2 * math.ceil(half / step) + 1
    y, x = (np.mgrid[:n, :n] - (n - 1) / 2) * step
    r = np.hypot(x, y)
    theta = np.arctan2(y, x)
    psi = theta - np.log(np.maximum(r, 1e-3 * h) / h) / math.tan(math.radians(pitch))
    light = np.exp(-r / h) * ((1.0 + np.cos(m * psi - phase)) / 2.0) ** sharp
    light *= 1.0 - np.exp(-((r / (_ARM_INNER * h)) ** 2))
    image = galsim.Image(light, scale=step)
    arms = galsim.InterpolatedImage(
        image, flux=flux, calculate_stepk=False, calculate_maxk=False, pad_factor=2,
        gsparams=_GSPARAMS,
    )  # fmt: skip
    info = {"n_arms": m, "arm_pitch_deg": pitch}
    return arms.shear(q=q, beta=beta_deg * galsim.degrees), info


def lopsided_component(
    rng: np.random.Generator, flux: float, r_half: float, q: float, beta_deg: float
) -> tuple[galsim.GSObject, dict]:
    """An off-centre exponential (a lopsided disk: the m = 1 mode common in disks, Zaritsky &
    Rix 1997) of half-light radius 0.4-0.8 r_half, 0.3-0.9 r_half from the centre in the disk
    plane."""
    radius = r_half * float(rng.uniform(0.3, 0.9))
    angle = float(rng.uniform(0.0, 2 * np.pi))
    x, y = project(radius * math.cos(angle), radius * math.sin(angle), q, beta_deg)
    blob = galsim.Exponential(
        half_light_radius=r_half * float(rng.uniform(0.4, 0.8)), flux=flux, gsparams=_GSPARAMS
    ).shear(q=q, beta=beta_deg * galsim.degrees)
    return blob.shift(float(x), float(y)), {"lopsided_offset_rhalf": radius / r_half}


def arc(
    flux: float,
    *,
    radius: tuple[float, float],
    angle: tuple[float, float],
    width: tuple[float, float],
    fade: float = 0.0,
    n: int = 12,
) -> galsim.GSObject:
    """A curved band of ``n`` overlapping Gaussians (a tidal tail or a shell), holding ``flux``.

    Point ``i`` of ``n`` lies at radius and angle interpolated linearly between the given (start,
    end) values (", rad), with a Gaussian sigma interpolated over ``width`` ("); its light falls
    as exp(-fade t) along the arc (t = 0 .. 1; a tail fades away from its galaxy).
    """
    t = np.linspace(0.0, 1.0, n)
    r = radius[0] + (radius[1] - radius[0]) * t
    phi = angle[0] + (angle[1] - angle[0]) * t
    sigma = width[0] + (width[1] - width[0]) * t
    weight = np.exp(-fade * t)
    weight *= flux / weight.sum()
    return galsim.Add(
        [
            galsim.Gaussian(sigma=float(s), flux=float(w), gsparams=_GSPARAMS).shift(
                float(rr * math.cos(p)), float(rr * math.sin(p))
            )
            for rr, p, s, w in zip(r, phi, sigma, weight, strict=True)
        ]
    )
