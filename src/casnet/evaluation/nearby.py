"""The nearby sample of the redshift suite (Tohill et al. 2021 Sec. 4.3): galaxies moved to high z.

The paper moves Frei et al. (1996) galaxies: real nearby images, unlike its training set. A suite
that moved galaxies drawn by the training set's own generators would test resolution only, never
a network meeting structure it has not seen (issue 16). The simulated sample here therefore holds
structure the training simulator (:mod:`casnet.data.simulate`) never draws:

- ``barred``: a bulge + disk spiral with a bar (a flat, n = 0.5, q 0.2-0.35 Sersic of 0.5-0.9
  disk half-light radii at a random angle to the disk; 10-25% of the light) and a lopsided disk
  (an off-centre component with 10-25% of the light: bars and m = 1 modes come together);
- ``ringed``: a bulge + disk with a star-forming inner ring (a Gaussian annulus in the disk plane
  at 0.8-1.5 half-light radii, 10-25% of the light, 30-70% of it in 4-12 knots along the ring),
  as in (R)SB0/a-Sb galaxies;
- ``dusty``: a disk seen nearly edge-on (q 0.15-0.3) crossed by a patchy dust lane along its
  major axis (attenuation tau 1-3 modulated by a smooth random screen, a Gaussian 0.05-0.15
  half-light radii wide, off the mid-plane by up to 0.5 of its width: light removed, which no sum
  of profiles can do);
- ``elliptical`` (Sersic n 3-5.5) and ``irregular`` (the clumpy disks of the training set): the
  two familiar kinds, for comparison.

Sizes are set at the reference redshift (the first of ``z_grid``): there the half-light radius is
``reference_rhalf_px`` pixels of the F160W grid, so the whole galaxy and its sky fit the stamp and
1.5 R_p fits the network's 60x60 crop (Sec. 4.3: "the whole galaxy must fit"). Or bring your own
nearby images (``evaluate.redshift.input``): :func:`user_sample`.
"""

from __future__ import annotations

from dataclasses import dataclass

import galsim
import numpy as np
from scipy.ndimage import gaussian_filter

from casnet.data.simulate import disk_galaxy, sersic_profile
from casnet.data.structure import lopsided_component
from casnet.evaluation.cosmology import angular_scale
from casnet.evaluation.settings import RedshiftSuiteConfig

__all__ = ["KINDS", "NearbyGalaxy", "nearby_sample", "user_sample"]

#: kinds of the simulated nearby sample and their shares
KINDS = {"elliptical": 0.2, "barred": 0.25, "ringed": 0.15, "dusty": 0.15, "irregular": 0.25}


@dataclass(frozen=True)
class NearbyGalaxy:
    """A nearby galaxy: noiseless image (sum 1), its absolute magnitude and kind."""

    galaxy_id: str
    image: np.ndarray
    abs_mag: float
    kind: str


def _disk_frame(shape: tuple[int, int], q: float, beta_deg: float, scale: float):
    """Disk-plane coordinates (") of every pixel of an image centred on the galaxy, for a disk of
    axis ratio ``q`` whose major axis lies at ``beta_deg`` (GalSim's convention)."""
    ny, nx = shape
    y, x = (np.indices(shape) - np.array([(ny - 1) / 2, (nx - 1) / 2])[:, None, None]) * scale
    b = np.radians(beta_deg)
    major = x * np.cos(b) + y * np.sin(b)
    minor = -x * np.sin(b) + y * np.cos(b)
    return major, minor / q


def _draw(
    profile: galsim.GSObject, seeing: galsim.GSObject, cfg: RedshiftSuiteConfig
) -> np.ndarray:
    n = cfg.native_size
    image = galsim.Convolve(profile, seeing).drawImage(nx=n, ny=n, scale=cfg.native_pixel_scale)
    return image.array.astype(np.float64)


def _galaxy(kind: str, rng: np.random.Generator, r_e: float, cfg: RedshiftSuiteConfig,
            seeing: galsim.GSObject) -> np.ndarray:  # fmt: skip
    """The noiseless native image of one galaxy of ``kind`` and half-light radius ``r_e`` (")."""
    beta = float(rng.uniform(0, 180))
    if kind == "elliptical":
        q = float(rng.uniform(0.6, 1.0))
        gal = sersic_profile(float(rng.uniform(3.0, 5.5)), r_e, 1.0)
        return _draw(gal.shear(q=q, beta=beta * galsim.degrees), seeing, cfg)
    if kind == "irregular":
        gal, _ = disk_galaxy(rng, 1.0, r_e, clumpy=True)
        return _draw(gal, seeing, cfg)
    if kind == "dusty":
        q = float(rng.uniform(0.15, 0.3))
        disk = sersic_profile(1.0, r_e, 0.85) + sersic_profile(2.5, 0.3 * r_e, 0.15)
        image = _draw(disk.shear(q=q, beta=beta * galsim.degrees), seeing, cfg)
        _, minor = _disk_frame(image.shape, q, beta, cfg.native_pixel_scale)
        tau, width = float(rng.uniform(1.0, 3.0)), float(rng.uniform(0.05, 0.15)) * r_e
        # the lane lies in the disk plane, offset a little: a thin disk seen slightly off edge-on
        offset = float(rng.uniform(-0.5, 0.5)) * width
        lane = np.exp(-0.5 * ((minor * q - offset) / width) ** 2)
        patches = gaussian_filter(rng.normal(size=image.shape), max(width / cfg.native_pixel_scale,
                                                                    1.0))  # fmt: skip
        patches = np.clip(1 + 0.8 * patches / (patches.std() or 1.0), 0, None)
        return image * np.exp(-tau * lane * patches)
    # barred / ringed: a bulge + disk of the training set's kind, plus the new component
    q = float(rng.uniform(0.5, 1.0))
    share = float(rng.uniform(0.10, 0.25))
    base = sersic_profile(1.0, r_e, 0.8 * (1 - share)) + sersic_profile(
        float(rng.uniform(2.0, 4.0)), 0.25 * r_e, 0.2 * (1 - share))  # fmt: skip
    base = base.shear(q=q, beta=beta * galsim.degrees)
    if kind == "barred":
        bar_q = float(rng.uniform(0.2, 0.35))
        bar_angle = beta + float(rng.uniform(20.0, 70.0)) * rng.choice([-1, 1])
        bar = sersic_profile(0.5, float(rng.uniform(0.5, 0.9)) * r_e, share)
        lopsided, _ = lopsided_component(rng, float(rng.uniform(0.10, 0.25)), r_e, q, beta)
        bar = bar.shear(q=bar_q, beta=bar_angle * galsim.degrees)
        return _draw(base + bar + lopsided, seeing, cfg)
    image = _draw(base, seeing, cfg)
    major, minor = _disk_frame(image.shape, q, beta, cfg.native_pixel_scale)
    radius = np.hypot(major, minor)
    r0, width = float(rng.uniform(0.8, 1.5)) * r_e, float(rng.uniform(0.08, 0.15)) * r_e
    ring = np.exp(-0.5 * ((radius - r0) / width) ** 2)
    knotted = float(rng.uniform(0.3, 0.7))
    angle = np.arctan2(minor, major)
    for phi in rng.uniform(0, 2 * np.pi, int(rng.integers(4, 13))):
        weight = rng.uniform(0.3, 1.0)
        ring_knot = np.exp(-0.5 * (np.angle(np.exp(1j * (angle - phi))) * r0 / width) ** 2)
        ring += weight * knotted / (1 - knotted) * ring * ring_knot
    image = image + share * ring / ring.sum()
    return image


def nearby_sample(cfg: RedshiftSuiteConfig, pixel_scale: float = 0.06) -> list[NearbyGalaxy]:
    """The simulated nearby sample (module docstring), noiseless at the native scale, seeded.

    ``pixel_scale``: the F160W grid ("/px) on which the half-light radius is
    ``cfg.reference_rhalf_px`` at the reference redshift.
    """
    rng = np.random.default_rng(cfg.seed)
    seeing = galsim.Gaussian(fwhm=2 * cfg.native_pixel_scale)  # a ground-based nearby survey
    kinds = rng.choice(list(KINDS), size=cfg.n_galaxies, p=list(KINDS.values()))
    to_native = pixel_scale / angular_scale(float(cfg.z_grid[0]), cfg)  # " at z0 per px at z_ref
    lo, hi = cfg.reference_rhalf_px
    out = []
    for i, kind in enumerate(kinds):
        r_e = float(rng.uniform(lo, hi)) * to_native
        image = np.clip(_galaxy(str(kind), rng, r_e, cfg, seeing), 0, None)
        out.append(NearbyGalaxy(f"nearby-{i:04d}", image / image.sum(),
                                float(rng.uniform(-23.0, -20.5)), str(kind)))  # fmt: skip
    return out


def user_sample(cfg: RedshiftSuiteConfig) -> list[NearbyGalaxy]:
    """Nearby FITS images from ``cfg.input`` (sky-subtracted; header ABSMAG optional)."""
    from casnet.data.io.fits import expand_paths, read_image

    out = []
    for path in expand_paths([cfg.input]):
        image, header = read_image(path)
        image = np.nan_to_num(np.asarray(image, dtype=np.float64))
        image = image - np.median(image)
        total = image[image > 0].sum()
        if total <= 0:
            continue
        out.append(NearbyGalaxy(path.stem, np.clip(image, 0, None) / total,
                                float(header.get("ABSMAG", -22.0)), "user"))  # fmt: skip
    return out
