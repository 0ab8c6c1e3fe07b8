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
    "clump_complexes",
    "clumps",
    "envelope",
    "lopsided_component",
    "project",
    "ragged_disk",
    "random_field",
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


def _face_on(light: np.ndarray, step: float, flux: float) -> galsim.GSObject:
    """A face-on light array drawn at ``step`` ("/px) as a GalSim profile holding ``flux``
    (GalSim's stepk / maxk taken from the padded array, not searched for)."""
    return galsim.InterpolatedImage(
        galsim.Image(light, scale=step), flux=flux, calculate_stepk=False,
        calculate_maxk=False, pad_factor=2, gsparams=_GSPARAMS,
    )  # fmt: skip


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
    *,
    clumpiness: float = 0.0,
    field_rng: np.random.Generator | None = None,
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
    clumpiness : float
        Strength s of a log-normal modulation exp(s G - s^2 / 2) of the arms' light by a random
        field G of correlation 0.15 h drawn from ``field_rng`` (real arms are strings of
        star-forming knots, not smooth bands; issue 29). 0: smooth arms, no draw.
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
    if clumpiness > 0 and field_rng is not None:
        field = random_field(field_rng, n, 0.15 * h / step)
        light *= np.exp(clumpiness * field - clumpiness**2 / 2)
    arms = _face_on(light, step, flux)
    info = {"n_arms": m, "arm_pitch_deg": pitch, "arm_clumpiness": clumpiness}
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


# --- Real morphology (issue 29) -------------------------------------------------------------
# benchmarks/realgap.md measured where the simulator above fails to cover 88 real COSMOS HST
# galaxies rendered as F160W stamps: 30% of the real views have a noise-free A above the 95th
# percentile of simulated galaxies matched in magnitude and size (lopsided disks 46%, pairs 72%),
# spheroids carry one-sided light (peak one-sidedness median 0.68 against 0.35), the real C sits
# 0.2 lower (bulgeless, low-n light), and the residual peaks say the gap is ragged one-sided outer
# light, off-centre cores and double nuclei rather than more compact clumps. The builders below
# add that structure; each is drawn from a second random stream, so with every new share at 0 the
# simulator is the old one, bit for bit (the benchmark trains on both).


def random_field(rng: np.random.Generator, n: int, corr_px: float) -> np.ndarray:
    """A Gaussian random field on an n x n grid with zero mean, unit variance and a Gaussian
    correlation of ``corr_px`` pixels (white noise smoothed in Fourier space)."""
    white = rng.standard_normal((n, n))
    k = np.fft.fftfreq(n)
    kk = k[:, None] ** 2 + k[None, :] ** 2
    field = np.fft.ifft2(np.fft.fft2(white) * np.exp(-2.0 * (np.pi * corr_px) ** 2 * kk)).real
    std = field.std()
    return field / std if std > 0 else field


def _sersic_b(n: float) -> float:
    """b_n of the Sersic profile exp(-b_n (r / r_e)^(1/n)) (Ciotti & Bertin 1999, to 1e-4)."""
    return 2.0 * n - 1.0 / 3.0 + 0.009876 / n


def ragged_disk(
    rng: np.random.Generator,
    flux: float,
    r_half: float,
    n: float,
    q: float,
    beta_deg: float,
    pixel_scale: float,
    max_extent: float,
    *,
    flocculence: float,
    m1: float,
    corr_rhalf: float,
) -> tuple[galsim.GSObject, dict]:
    """A Sersic disk whose light is patchy and one-sided, holding ``flux``.

    Face-on light: exp(-b_n (r / r_half)^(1/n)) x exp(s G - s^2 / 2) x exp(m1 g(r) cos(theta -
    phi)), with G a unit Gaussian random field of correlation ``corr_rhalf`` r_half (flocculent
    star formation, dust lanes: a log-normal modulation of strength s = ``flocculence``) and an
    m = 1 mode whose amplitude g(r) = (r / r_half) / (1 + r / r_half) grows outwards (the
    lopsided outer light of real disks: Zaritsky & Rix 1997 find <A1> ~ 0.1-0.3 at 1.5-2.5 scale
    lengths, Jog & Combes 2009). Drawn at half the pixel scale, projected with the disk's shear.
    """
    step = pixel_scale / 2
    half = min(max_extent, 8.0 * r_half)
    size = 2 * math.ceil(half / step) + 1
    y, x = (np.mgrid[:size, :size] - (size - 1) / 2) * step
    r = np.hypot(x, y) / r_half
    theta = np.arctan2(y, x)
    phase = float(rng.uniform(0.0, 2 * np.pi))
    field = random_field(rng, size, corr_rhalf * r_half / step)
    light = np.exp(-_sersic_b(n) * r ** (1.0 / n))
    light *= np.exp(flocculence * field - flocculence**2 / 2)
    light *= np.exp(m1 * r / (1.0 + r) * np.cos(theta - phase))
    disk = _face_on(light, step, flux)
    info = {"flocculence": flocculence, "m1_amplitude": m1, "field_scale_rhalf": corr_rhalf}
    return disk.shear(q=q, beta=beta_deg * galsim.degrees), info


def clump_complexes(
    rng: np.random.Generator,
    flux: float,
    r_half: float,
    q: float,
    beta_deg: float,
    *,
    n_range: tuple[int, int] = (2, 12),
) -> tuple[galsim.GSObject, dict]:
    """Irregular star-forming clumps: each a complex of 1-4 elongated Gaussians, holding ``flux``.

    Real clumps are not round blobs of one size (Guo et al. 2015, 2018: a clump holds ~1-20% of
    a galaxy's UV light, sizes from unresolved to ~1 kpc, i.e. 0.04-0.4" at z ~ 1-3, more often
    in the outer disk, and often on one side): clump FWHMs are log-uniform in 0.04-0.4", their
    shares from a Dirichlet(0.5), their position angles from a von Mises distribution of
    concentration kappa 0-3 around one direction (kappa 0: all round the disk; 3: one side), at
    disk-plane radii 0.1-2.0 r_half. Each complex is 1-4 sub-clumps of axis ratio 0.3-1 within
    one FWHM of its centre.

    Returns
    -------
    profile, info
        ``info`` has ``n_clumps``, ``clump_one_sidedness`` (kappa) and ``clump_x`` /
        ``clump_y`` (sky offsets, ").
    """
    n = int(rng.integers(n_range[0], n_range[1] + 1))
    shares = rng.dirichlet(np.full(n, 0.5))
    kappa = float(rng.uniform(0.0, 3.0))
    angle = rng.vonmises(float(rng.uniform(-np.pi, np.pi)), kappa, size=n)
    radius = r_half * rng.uniform(0.1, 2.0, size=n)
    fwhm = np.exp(rng.uniform(math.log(0.04), math.log(0.4), size=n))
    x, y = project(radius * np.cos(angle), radius * np.sin(angle), q, beta_deg)
    parts = []
    for w, share, cx, cy in zip(fwhm, shares, x, y, strict=True):
        m = int(rng.integers(1, 5))
        sub = rng.dirichlet(np.ones(m)) * flux * share
        for f in sub:
            dx, dy = rng.normal(0.0, 0.5 * w, size=2)
            blob = galsim.Gaussian(fwhm=float(w) * float(rng.uniform(0.5, 1.0)), flux=float(f),
                                   gsparams=_GSPARAMS)  # fmt: skip
            blob = blob.shear(q=float(rng.uniform(0.3, 1.0)),
                              beta=float(rng.uniform(0, 180)) * galsim.degrees)  # fmt: skip
            parts.append(blob.shift(float(cx + dx), float(cy + dy)))
    info = {"n_clumps": n, "clump_one_sidedness": kappa, "clump_x": x, "clump_y": y}
    return galsim.Add(parts), info


def envelope(
    rng: np.random.Generator, flux: float, r_half: float, q: float, beta_deg: float
) -> tuple[galsim.GSObject, dict]:
    """A faint, offset outer envelope (the one-sided light of disturbed spheroids and of
    post-interaction disks): an exponential of 1.5-3 r_half centred 0.2-0.8 r_half away."""
    radius = r_half * float(rng.uniform(0.2, 0.8))
    angle = float(rng.uniform(0.0, 2 * np.pi))
    size = r_half * float(rng.uniform(1.5, 3.0))
    blob = galsim.Exponential(half_light_radius=size, flux=flux, gsparams=_GSPARAMS)
    blob = blob.shear(q=float(np.clip(q * rng.uniform(0.6, 1.0), 0.2, 1.0)),
                      beta=(beta_deg + float(rng.normal(0, 20))) * galsim.degrees)  # fmt: skip
    shift = (radius * math.cos(angle), radius * math.sin(angle))
    return blob.shift(*shift), {"envelope_offset_rhalf": radius / r_half}
