"""GalSim stamps of CANDELS-like galaxies with their noiseless truth (the embedded data source).

Populations a CANDELS user would recognise (Tohill et al. 2021 Sec. 2.1, Figs. 1-3):

- ``disk``: bulge (Sersic n 2-6) + exponential disk, bulge-to-total from a Beta distribution;
- ``clumpy``: a disk whose light is partly in GalSim ``RandomKnots`` (star-forming clumps);
- ``merger``: a close pair (companion 1.5-3.5 r_half away) with a one-sided tidal plume;
- ``spheroid``: compact, high-n (3.5-6) single Sersic;
- ``irregular``: no smooth disk: patchy, one-sided light with irregular clump complexes.

Real morphology (issue 29, measured against 88 real COSMOS galaxies in benchmarks/realgap.md):
most disks are ragged (patchy, lopsided outer light), clumps are irregular complexes, arms
are knotty, some bulges sit off-centre, some disks have no bulge, spheroids may carry an offset
envelope or a displaced core, some mergers are double nuclei, and a few disks are nucleated
(the C > 4 tail). Those choices come from a second random stream per galaxy, so with their
shares at 0 (``SimulateConfig``) the stamps are the old simulator's, bit for bit.

H magnitudes follow number counts N(m) ~ 10^(mag_slope m); half-light radii a log-normal
size-magnitude relation. Unrelated neighbours (galaxies and stars) are scattered in a fraction of
the stamps so that cleaning has work to do. Noise reaches the CANDELS-deep depth (5-sigma
point-source limit H = 27.7 in a 0.2 arcsec-radius aperture), part white and part correlated with
the COSMOS correlation function (``galsim.getCOSMOSNoise``, see :mod:`.noise`), as in drizzled
HST mosaics. A
redshift-like label z (0-7) rises with magnitude, for plots.

The truth is the noiseless, PSF-convolved image of the target alone (its tidal plume included,
its companion and the neighbours excluded). Deterministic: galaxy ``i`` draws every random number
from a stream seeded by ``(seed, i)``, so a stamp does not depend on which other stamps are made,
in which order, or by which worker.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import galsim
import numpy as np

from casnet.data import structure
from casnet.data.cosmos import cosmos_catalog, cosmos_galaxy
from casnet.data.noise import aperture_noise_std, circle_weights, sky_noise, source_noise
from casnet.data.psf import psf_model
from casnet.data.settings import SimulateConfig
from casnet.morphology.extent import noiseless_fit
from casnet.morphology.settings import MorphologyConfig

__all__ = [
    "KINDS",
    "SimulatedGalaxy",
    "disk_galaxy",
    "flux_from_mag",
    "galaxy_id",
    "point_source_fraction",
    "sersic_profile",
    "simulate",
    "simulate_galaxy",
    "simulation_rng",
    "sky_sigma_per_pixel",
    "write_stamps",
]

#: radius (arcsec) of the aperture in which the 5-sigma point-source depth is quoted
_DEPTH_APERTURE_ARCSEC = 0.2
#: half-light radius of a spheroid relative to a disk of the same magnitude
_SPHEROID_SIZE = 0.8
#: Sersic indices are drawn on this grid: GalSim caches the (expensive) Hankel tables per n
_N_STEP = 0.1
#: population kinds, stored as the ``kind`` column
KINDS = ("disk", "clumpy", "merger", "spheroid", "irregular", "cosmos")
_GSPARAMS = structure.GSPARAMS


@dataclass(frozen=True)
class SimulatedGalaxy:
    """One simulated stamp.

    Attributes
    ----------
    index : int
        Position in the simulation (the stream it was drawn from).
    galaxy_id : str
        Stable id ``sim<seed>-<index>``.
    image : 2-D float32 ndarray
        Observed stamp: target + companion + neighbours + PSF + noise.
    truth : 2-D float32 ndarray
        Noiseless, PSF-convolved image of the target alone.
    sky_sigma : float
        Per-pixel noise added (white + correlated).
    params : dict
        What was drawn (kind, magnitude, half-light radius in px, z, ...).
    """

    index: int
    galaxy_id: str
    image: np.ndarray
    truth: np.ndarray
    sky_sigma: float
    params: dict = field(default_factory=dict)
    #: noiseless, PSF-convolved image of everything in the stamp (target, companion, neighbours):
    #: ``scene - truth`` is the light of the other sources, what cleaning must remove (kept in
    #: memory only; the stores hold ``image`` and ``truth``)
    scene: np.ndarray | None = None


def galaxy_id(seed: int, index: int) -> str:
    """Stable string id of simulated galaxy ``index`` of the simulation with ``seed``."""
    return f"sim{seed}-{index:07d}"


def simulation_rng(seed: int, index: int) -> np.random.Generator:
    """Independent random stream of the simulation's galaxy ``index`` (NumPy ``SeedSequence`` of
    (seed, index)); galaxies with a catalogue id use :func:`casnet.data.clean.galaxy_rng`."""
    return np.random.default_rng([seed, index])


def flux_from_mag(mag: float, zero_point: float) -> float:
    """Counts per second of an AB magnitude for the given zero point."""
    return 10.0 ** (-0.4 * (mag - zero_point))


def sky_sigma_per_pixel(cfg: SimulateConfig) -> float:
    """Per-pixel sky noise giving a 5-sigma point-source limit of ``depth_5sigma``.

    A point source of that (total) magnitude is detected at 5 sigma in a 0.2 arcsec-radius
    aperture (the CANDELS convention, Grogin et al. 2011): the light of the PSF inside the
    aperture is 5 times the noise of the sum over it, the correlated share of the noise counted
    (:func:`casnet.data.noise.aperture_noise_std`). Counting only the per-pixel noise and the
    total flux, as before 2026-12-01, made the real limit H = 26.9 where the parameter said 27.7.
    """
    f_lim = flux_from_mag(cfg.depth_5sigma, cfg.zero_point)
    radius = _DEPTH_APERTURE_ARCSEC / cfg.pixel_scale
    inside = point_source_fraction(cfg, radius)
    return inside * f_lim / (5.0 * aperture_noise_std(radius, cfg.correlated_noise_fraction))


def point_source_fraction(cfg: SimulateConfig, radius: float) -> float:
    """Share of a point source's light (the simulation's PSF, drawn centred on a pixel) inside a
    circle of ``radius`` px."""
    size = 2 * int(np.ceil(radius)) + 41
    star = psf_model(cfg).drawImage(nx=size, ny=size, scale=cfg.pixel_scale).array
    return float(np.sum(star * circle_weights(radius, size)) / np.sum(star))


def _draw_mag(rng: np.random.Generator, lo: float, hi: float, slope: float) -> float:
    """Inverse-CDF draw from N(m) ~ 10^(slope m) on [lo, hi]."""
    if abs(slope) < 1e-9:
        return float(rng.uniform(lo, hi))
    k = slope * math.log(10.0)
    u = rng.random()
    return float(math.log(math.exp(k * lo) + u * (math.exp(k * hi) - math.exp(k * lo))) / k)


def sersic_profile(n: float, r_half: float, flux: float) -> galsim.GSObject:
    """A Sersic profile of index ``n`` (rounded to the grid GalSim caches, within its supported
    range), half-light radius ``r_half`` (") and total ``flux``."""
    n = min(max(round(n / _N_STEP) * _N_STEP, 0.3), 6.2)  # GalSim's supported range
    return galsim.Sersic(n=n, half_light_radius=r_half, flux=flux, gsparams=_GSPARAMS)


def _disk_axis_ratio(rng: np.random.Generator, thickness: float) -> float:
    """Projected axis ratio of a thick disk seen at a random inclination (cos i uniform):
    q^2 = cos^2 i (1 - q0^2) + q0^2 (Hubble 1926; intrinsic thickness q0)."""
    cos_i = float(rng.random())
    return math.sqrt(cos_i**2 * (1.0 - thickness**2) + thickness**2)


def disk_galaxy(
    rng: np.random.Generator,
    flux: float,
    r_half: float,
    *,
    clumpy: bool,
    arms: float = 0.0,
    lopsided: float = 0.0,
    thickness: float = 0.2,
    pixel_scale: float = 0.06,
    max_extent: float = 3.0,
    real: _RealStructure | None = None,
    nucleus: float = 0.0,
):
    """Bulge + disk of total ``flux`` and half-light radius ~``r_half`` ("), with structure.

    The bulge has Sersic n 1.5-4.5 (pseudo- to classical bulges) and 0.15-0.45 times the disk's
    size; bulge-to-total from Beta(0.8, 2). ``clumpy``: 20-50% of the disk's light is in resolved
    clumps (:func:`casnet.data.structure.clumps`). ``arms`` / ``lopsided``: the chance that the
    disk has spiral arms (never edge-on, q < 0.35) / an off-centre component. Every random
    number comes from ``rng``, except those of ``real`` (issue 29: ragged disks, clump
    complexes, knotty arms, no or an off-centre bulge), drawn from its own stream.
    ``nucleus``: the share of the light in an unresolved nucleus on a bulgeless exponential
    disk (a nucleated disk).
    """
    bt = float(rng.beta(0.8, 2.0))
    n_bulge = float(rng.uniform(1.5, 4.5))
    n_disk = float(rng.uniform(0.5, 1.3))
    q_disk = _disk_axis_ratio(rng, thickness)
    q_bulge = float(rng.uniform(0.6, 1.0))
    beta = float(rng.uniform(0.0, 180.0))
    disk_r = r_half * float(rng.uniform(1.0, 1.3))
    bulge_r = disk_r * float(rng.uniform(0.15, 0.45))
    parts = []
    info = {"bt": bt, "n_bulge": n_bulge, "n_disk": n_disk, "q": q_disk, "pa_deg": beta,
            "edge_on": q_disk < 0.35, "clump_fraction": 0.0, "n_clumps": 0, "arm_fraction": 0.0,
            "n_arms": 0, "arm_pitch_deg": float("nan"), "lopsided_fraction": 0.0,
            **REAL_STRUCTURE_DEFAULTS}  # fmt: skip
    choice = real.choose() if real is not None else {}
    if nucleus > 0 or choice.get("bulgeless"):
        bt, n_disk = 0.0, 1.0 if nucleus > 0 else choice.get("n_disk", n_disk)
        info.update(bt=0.0, n_bulge=float("nan"), n_disk=n_disk, bulgeless=True)
    if nucleus > 0:
        parts.append(galsim.DeltaFunction(flux=flux * nucleus))
        flux *= 1 - nucleus
        info["nucleus_fraction"] = nucleus
    if bt < 0.98:
        disk_flux = flux * (1 - bt)
        smooth_share = 1.0
        extra = []
        if clumpy:
            frac = float(rng.uniform(0.2, 0.5))
            if choice.get("complex_clumps"):
                knots, kinfo = structure.clump_complexes(
                    real.rng, disk_flux * frac, disk_r, q_disk, beta
                )
                info.update(complex_clumps=True, clump_one_sidedness=kinfo["clump_one_sidedness"])
            else:
                knots, kinfo = structure.clumps(rng, disk_flux * frac, disk_r, q_disk, beta)
            extra.append(knots)
            smooth_share -= frac
            info.update(clump_fraction=frac, n_clumps=kinfo["n_clumps"])
        if q_disk >= 0.35 and rng.random() < arms:
            frac = float(rng.uniform(0.15, 0.4))
            spiral, ainfo = structure.spiral_arms(
                rng, disk_flux * frac, disk_r, q_disk, beta, pixel_scale, max_extent,
                clumpiness=choice.get("arm_clumpiness", 0.0),
                field_rng=real.rng if real is not None else None,
            )  # fmt: skip
            extra.append(spiral)
            smooth_share -= frac
            info.update(arm_fraction=frac, **ainfo)
        if rng.random() < lopsided:
            frac = float(rng.uniform(0.05, 0.2))
            blob, _ = structure.lopsided_component(rng, disk_flux * frac, disk_r, q_disk, beta)
            extra.append(blob)
            smooth_share -= frac
            info["lopsided_fraction"] = frac
        if "ragged" in choice:
            disk, rinfo = structure.ragged_disk(
                real.rng, disk_flux * smooth_share, disk_r, n_disk, q_disk, beta, pixel_scale,
                max_extent, **choice["ragged"],
            )  # fmt: skip
            info.update(rinfo)
            parts.append(disk)
        else:
            disk = sersic_profile(n_disk, disk_r, disk_flux * smooth_share)
            parts.append(disk.shear(q=q_disk, beta=beta * galsim.degrees))
        parts.extend(extra)
    if bt > 0.02:
        bulge = sersic_profile(n_bulge, bulge_r, flux * bt)
        bulge = bulge.shear(q=q_bulge, beta=beta * galsim.degrees)
        if "bulge_offset" in choice:
            # an off-centre bulge or core (issue 29: real cores are often displaced from the
            # outer isophotes' centre: the realgap's centroid offsets)
            off, angle = choice["bulge_offset"]
            bulge = bulge.shift(r_half * off * math.cos(angle), r_half * off * math.sin(angle))
            info["bulge_offset_rhalf"] = off
        parts.append(bulge)
    return (galsim.Add(parts) if len(parts) > 1 else parts[0]), info


#: the real-morphology columns (issue 29) of a galaxy that has none of it
REAL_STRUCTURE_DEFAULTS = {"bulgeless": False, "nucleus_fraction": 0.0, "flocculence": 0.0,
                           "m1_amplitude": 0.0, "field_scale_rhalf": float("nan"),
                           "complex_clumps": False, "clump_one_sidedness": float("nan"),
                           "arm_clumpiness": 0.0, "bulge_offset_rhalf": 0.0,
                           "envelope_fraction": 0.0, "envelope_offset_rhalf": float("nan"),
                           "core_offset_rhalf": 0.0, "double_nucleus": False}  # fmt: skip


@dataclass
class _RealStructure:
    """The real-morphology choices of one galaxy (issue 29), drawn from their own stream ``rng``
    so that the old simulator's draws (from the structure stream) stay as they were."""

    rng: np.random.Generator
    cfg: SimulateConfig

    def choose(self) -> dict:
        """Which real-morphology structures a disk gets, and their strengths."""
        rng, cfg = self.rng, self.cfg
        out: dict = {}
        # every draw is made whatever the shares, so a share changes only its own structure
        u = rng.random(5)
        lo, hi = cfg.ragged_strength
        strength, m1, corr = rng.uniform(lo, hi), rng.uniform(lo, hi), rng.uniform(0.15, 0.5)
        n_disk, arm_s = rng.uniform(0.4, 1.0), rng.uniform(0.4, 1.0)
        offset = (rng.uniform(0.05, 0.35), rng.uniform(0.0, 2 * np.pi))
        if u[0] < cfg.ragged_fraction:
            out["ragged"] = {"flocculence": float(strength), "m1": float(m1),
                             "corr_rhalf": float(corr)}  # fmt: skip
        if u[1] < cfg.complex_clumps_fraction:
            out["complex_clumps"] = True
        if u[2] < cfg.clumpy_arms_fraction:
            out["arm_clumpiness"] = float(arm_s)
        if u[3] < cfg.bulgeless_fraction:
            out.update(bulgeless=True, n_disk=float(n_disk))
        if u[4] < cfg.offcentre_bulge_fraction:
            out["bulge_offset"] = (float(offset[0]), float(offset[1]))
        return out


def _spheroid(rng: np.random.Generator, flux: float, r_half: float,
              real: _RealStructure | None = None):  # fmt: skip
    """A single Sersic spheroid: n 3-6 (CANDELS quiescent galaxies cluster at n ~ 3-5, van der
    Wel et al. 2012), q 0.5-1.

    With ``real`` (issue 29), a share ``disturbed_spheroid_fraction`` is disturbed: 60% carry a
    faint offset envelope with 5-25% of the light (the real spheroids' one-sided outer light:
    realgap peak one-sidedness 0.68 against the simulator's 0.35), 40% a core with 10-25% of
    the light displaced 0.1-0.4 r_half."""
    n = float(rng.uniform(3.0, 6.0))
    q = float(rng.uniform(0.5, 1.0))
    beta = float(rng.uniform(0.0, 180.0))
    info = {"bt": 1.0, "n_bulge": n, "n_disk": float("nan"), "q": q, "pa_deg": beta,
            "edge_on": False, **REAL_STRUCTURE_DEFAULTS}  # fmt: skip
    if real is None:
        return sersic_profile(n, r_half, flux).shear(q=q, beta=beta * galsim.degrees), info
    r2 = real.rng
    u, envelope_like, share = r2.random(), r2.random() < 0.6, float(r2.uniform(0.05, 0.25))
    core_share, core_off, angle = r2.uniform(0.1, 0.25), r2.uniform(0.1, 0.4), r2.uniform(0, 6.3)
    if u >= real.cfg.disturbed_spheroid_fraction:
        return sersic_profile(n, r_half, flux).shear(q=q, beta=beta * galsim.degrees), info
    if envelope_like:
        body = sersic_profile(n, r_half, flux * (1 - share)).shear(q=q, beta=beta * galsim.degrees)
        env, einfo = structure.envelope(r2, flux * share, r_half, q, beta)
        info.update(envelope_fraction=share, **einfo)
        return galsim.Add([body, env]), info
    body = sersic_profile(n, r_half, flux * (1 - core_share)).shear(q=q, beta=beta * galsim.degrees)
    core = sersic_profile(2.0, 0.2 * r_half, flux * core_share)
    core = core.shift(r_half * core_off * math.cos(angle), r_half * core_off * math.sin(angle))
    info["core_offset_rhalf"] = float(core_off)
    return galsim.Add([body, core]), info


def _irregular(rng: np.random.Generator, flux: float, r_half: float, cfg: SimulateConfig):
    """An irregular galaxy (issue 29): no smooth disk under it; strongly patchy, one-sided light
    (log-normal strength 0.6-1.2, m = 1 amplitude 0.3-1.2) of Sersic n 0.5-1 on a thick disk
    (q0 0.4) with 20-60% of its light in 3-12 irregular clump complexes."""
    extent = cfg.stamp_size * cfg.pixel_scale / 2
    q = _disk_axis_ratio(rng, 0.4)
    beta = float(rng.uniform(0.0, 180.0))
    n = float(rng.uniform(0.5, 1.0))
    frac = float(rng.uniform(0.2, 0.6))
    body, rinfo = structure.ragged_disk(
        rng, flux * (1 - frac), r_half, n, q, beta, cfg.pixel_scale, extent,
        flocculence=float(rng.uniform(0.6, 1.2)), m1=float(rng.uniform(0.3, 1.2)),
        corr_rhalf=float(rng.uniform(0.2, 0.6)),
    )  # fmt: skip
    knots, kinfo = structure.clump_complexes(rng, flux * frac, r_half, q, beta, n_range=(3, 12))
    info = {**REAL_STRUCTURE_DEFAULTS, "bt": 0.0, "n_bulge": float("nan"), "n_disk": n, "q": q,
            "pa_deg": beta, "edge_on": q < 0.35, "clump_fraction": frac,
            "n_clumps": kinfo["n_clumps"], "arm_fraction": 0.0, "n_arms": 0,
            "arm_pitch_deg": float("nan"), "lopsided_fraction": 0.0, "bulgeless": True,
            "complex_clumps": True, "clump_one_sidedness": kinfo["clump_one_sidedness"],
            **rinfo}  # fmt: skip
    return galsim.Add([body, knots]), info


def _target(rng, kind: str, flux: float, r_half: float, cfg: SimulateConfig,
            real: _RealStructure | None = None, nucleus: float = 0.0):  # fmt: skip
    """The target in arcsec units: for a merger the host, its companion and their tidal debris
    together (the companion overlaps the host; its light is the merger's asymmetry, issue 15)."""
    extent = cfg.stamp_size * cfg.pixel_scale / 2
    structure_args = {"arms": cfg.arms_fraction, "lopsided": cfg.lopsided_fraction,
                      "thickness": cfg.disk_thickness, "pixel_scale": cfg.pixel_scale,
                      "max_extent": extent, "real": real}  # fmt: skip
    merger = {"companion_ratio": 0.0, "companion_sep_rhalf": float("nan"), "n_tails": 0,
              "tail_fraction": 0.0, "n_shells": 0, "shell_fraction": 0.0,
              "double_nucleus": False}  # fmt: skip
    if kind == "spheroid":
        gal, info = _spheroid(rng, flux, r_half, real)
        return gal, {**_NO_DISK_STRUCTURE, **info, **merger}
    if kind == "irregular":
        gal, info = _irregular(rng, flux, r_half, cfg)
        return gal, {**info, **merger}
    if kind != "merger":
        gal, info = disk_galaxy(rng, flux, r_half, clumpy=kind == "clumpy", nucleus=nucleus,
                                **structure_args)  # fmt: skip
        return gal, {**info, **merger}
    # A merger: host (a disk, or for a third a spheroid with shells) + an overlapping companion
    # 0.6-1.8 r_half away with 0.25-1 of its light (minor to major mergers) + tidal debris.
    ratio = float(rng.uniform(0.25, 1.0))
    debris = float(rng.uniform(0.05, 0.2))
    host_flux = flux * (1 - debris) / (1 + ratio)
    spheroid_host = rng.random() < 1 / 3
    if spheroid_host:
        host, info = _spheroid(rng, host_flux, r_half, real)
        info = {**_NO_DISK_STRUCTURE, **info}
    else:
        host, info = disk_galaxy(rng, host_flux, r_half, clumpy=rng.random() < 0.3,
                                 **structure_args)  # fmt: skip
    angle = float(rng.uniform(0, 2 * np.pi))
    # overlapping: within the 1.8 r_half inside which the segmentation counts a distinct
    # source as part of the target (casnet.morphology.segmentation.OVERLAP_RHALF)
    sep = r_half * float(rng.uniform(0.6, 1.8))
    if real is not None:
        # double nuclei (issue 29: the real pairs' A is 0.23 where the simulated mergers matched
        # to them had 0.05): the companion inside the host's half-light radius
        u, close = real.rng.random(), real.rng.uniform(0.15, 0.6)
        if u < cfg.double_nucleus_fraction:
            sep = r_half * float(close)
            merger["double_nucleus"] = True
    comp_r = r_half * ratio**0.3  # sizes scale weakly with luminosity
    if rng.random() < 0.3:
        comp, _ = _spheroid(rng, host_flux * ratio, comp_r)
    else:
        comp, _ = disk_galaxy(rng, host_flux * ratio, comp_r, clumpy=False)
    parts = [host, comp.shift(sep * math.cos(angle), sep * math.sin(angle))]
    if spheroid_host:
        # shells: 1-3 concentric arcs 1.5-3.5 r_half out, on alternating sides
        n_shells = int(rng.integers(1, 4))
        for k in range(n_shells):
            rad = r_half * float(rng.uniform(1.5, 3.5))
            mid = angle + np.pi * k + float(rng.normal(0, 0.3))
            span = float(rng.uniform(0.6, 1.4))
            parts.append(structure.arc(flux * debris / n_shells, radius=(rad, rad),
                                       angle=(mid - span, mid + span),
                                       width=(0.1 * rad, 0.1 * rad)))  # fmt: skip
        merger.update(n_shells=n_shells, shell_fraction=debris)
    else:
        # tidal tails: 1-2 curved bands from the pair outwards, fading along their length
        n_tails = int(rng.integers(1, 3))
        for k in range(n_tails):
            start = angle + np.pi * k
            curl = float(rng.choice([-1, 1]) * rng.uniform(0.6, 1.6))
            parts.append(structure.arc(flux * debris / n_tails,
                                       radius=(0.8 * r_half, r_half * rng.uniform(3.0, 5.0)),
                                       angle=(start, start + curl),
                                       width=(0.3 * r_half, 0.6 * r_half), fade=1.5))  # fmt: skip
        merger.update(n_tails=n_tails, tail_fraction=debris)
    merger.update(companion_ratio=ratio, companion_sep_rhalf=sep / r_half)
    return galsim.Add(parts), {**info, **merger}


#: the structure columns of a COSMOS galaxy (its structure is real, not drawn): unknown
_COSMOS_DEFAULTS = {"bt": float("nan"), "n_bulge": float("nan"), "n_disk": float("nan"),
                    "q": float("nan"), "edge_on": False, "clump_fraction": float("nan"),
                    "n_clumps": -1, "arm_fraction": float("nan"), "n_arms": -1,
                    "arm_pitch_deg": float("nan"), "lopsided_fraction": float("nan"),
                    "companion_ratio": float("nan"), "companion_sep_rhalf": float("nan"),
                    "n_tails": -1, "tail_fraction": float("nan"), "n_shells": -1,
                    "shell_fraction": float("nan"), **REAL_STRUCTURE_DEFAULTS}  # fmt: skip

#: the disk-structure columns of a galaxy without a disk
_NO_DISK_STRUCTURE = {"clump_fraction": 0.0, "n_clumps": 0, "arm_fraction": 0.0, "n_arms": 0,
                      "arm_pitch_deg": float("nan"), "lopsided_fraction": 0.0}  # fmt: skip


def _neighbours(rng, cfg: SimulateConfig) -> list[galsim.GSObject]:
    """Unrelated galaxies and stars away from the centre."""
    out = []
    half = cfg.stamp_size * cfg.pixel_scale / 2
    for _ in range(int(rng.integers(1, 4))):
        pos = rng.uniform(-0.9 * half, 0.9 * half, size=2)
        if math.hypot(*pos) < 20 * cfg.pixel_scale:  # keep the centre for the target
            continue
        mag = _draw_mag(rng, *cfg.neighbour_mag_range, cfg.mag_slope)
        flux = flux_from_mag(mag, cfg.zero_point)
        if rng.random() < cfg.star_fraction:
            out.append(galsim.DeltaFunction(flux=flux).shift(*pos))
        else:
            r = float(rng.uniform(0.1, 0.5))
            q = float(rng.uniform(0.3, 1.0))
            nb = galsim.Exponential(half_light_radius=r, flux=flux, gsparams=_GSPARAMS)
            out.append(nb.shear(q=q, beta=float(rng.uniform(0, 180)) * galsim.degrees).shift(*pos))
    return out


def _draw_r_half(rng: np.random.Generator, cfg: SimulateConfig, kind: str, mag: float) -> float:
    """Half-light radius (px) from the log-normal size-magnitude relation."""
    median_r = cfg.rhalf_px_at_23 * 10 ** (cfg.rhalf_mag_slope * (mag - 23.0))
    r_half_px = median_r * 10 ** (cfg.rhalf_scatter_dex * float(rng.standard_normal()))
    if kind == "spheroid":
        # early types are 0.2-0.3 dex smaller than late types at fixed *mass* (van der Wel et
        # al. 2014), but at fixed luminosity their higher M/L puts them higher on their steeper
        # size-mass relation, which cancels most of it: 0.8 (0.1 dex). At 0.4 the drizzled F160W
        # PSF left them unresolved (C ~ 3.1 whatever n)
        r_half_px *= _SPHEROID_SIZE
    return float(np.clip(r_half_px, *cfg.rhalf_range_px))


def simulate_galaxy(
    index: int, cfg: SimulateConfig, morphology: MorphologyConfig | None = None
) -> SimulatedGalaxy:
    """Render galaxy ``index`` of the simulation described by ``cfg``.

    The galaxy must fit its stamp as the measurement (``morphology``) needs it: the 1.5 R_p
    apertures inside and enough sky beyond (:func:`casnet.morphology.extent.noiseless_fit`). One
    that does not is redrawn with the same structure, smaller by what it lacks (0.5-0.8x a
    step), up to ``fit_tries``
    times; the catalogue keeps the drawn size (``r_half_px_drawn``), the redraws and whether it
    fits in the end (``stamp_fits``), so the truncation of the size distribution is on record.
    """
    morphology = morphology or MorphologyConfig()
    rng = simulation_rng(cfg.seed, index)
    scale, size = cfg.pixel_scale, cfg.stamp_size
    u = rng.random()
    cuts = np.cumsum([cfg.clumpy_fraction, cfg.merger_fraction, cfg.spheroid_fraction,
                      cfg.irregular_fraction])  # fmt: skip
    kinds = ("clumpy", "merger", "spheroid", "irregular", "disk")
    kind = kinds[int(np.searchsorted(cuts, u, side="right"))]
    if cfg.cosmos_dir and rng.random() < cfg.cosmos_fraction:
        kind = "cosmos"  # a real COSMOS morphology at its own size (casnet.data.cosmos)
    mag = _draw_mag(rng, *cfg.mag_range, cfg.mag_slope)
    r_drawn = _draw_r_half(rng, cfg, kind, mag) if kind != "cosmos" else float("nan")
    flux = flux_from_mag(mag, cfg.zero_point)
    offset = rng.uniform(-0.5, 0.5, size=2) * scale  # cutouts are never centred on a pixel
    neighbours = _neighbours(rng, cfg) if rng.random() < cfg.neighbour_fraction else []
    z = float(np.clip(0.5 + 0.45 * (mag - 20.0) + 0.5 * rng.standard_normal(), 0.0, 7.0))
    structure_seed = [cfg.seed, index, 1]  # the same structure at every size tried
    real_seed = [cfg.seed, index, 2]  # issue 29's structure: its own stream (see the docstring)
    # a nucleated disk (the C > 4 tail): chosen per galaxy, since it sets a large size
    galaxy_choice = np.random.default_rng([cfg.seed, index, 3])
    u_nucleus, u_share, u_size = galaxy_choice.random(3)
    nucleus = 0.0
    if kind == "disk" and u_nucleus < cfg.nucleated_fraction:
        # an exponential disk of r_half 9-13 px under an unresolved nucleus with 20-40% of the
        # light has C 3.6-4.8 through the F160W PSF (1.5 R_p, eta 0.2; tests/test_structure.py);
        # larger disks trap the Petrosian radius on the nucleus (C ~ 3.1)
        nucleus = float(0.2 + 0.2 * u_share)
        r_drawn = float(np.clip(9.0 + 4.0 * u_size, *cfg.rhalf_range_px))
    sigma = sky_sigma_per_pixel(cfg)
    psf = psf_model(cfg)
    centre = ((size - 1) / 2 + offset[0] / scale, (size - 1) / 2 + offset[1] / scale)

    shrink = 1.0
    for redraws in range(cfg.fit_tries + 1):
        structure_rng = np.random.default_rng(structure_seed)
        if kind == "cosmos":
            catalog = cosmos_catalog(cfg.cosmos_dir, cfg.cosmos_file)
            target, info = cosmos_galaxy(catalog, structure_rng, flux)
            target, info = target.dilate(shrink), {**_COSMOS_DEFAULTS, **info}
        else:
            real = _RealStructure(np.random.default_rng(real_seed), cfg)
            target, info = _target(structure_rng, kind, flux, r_drawn * shrink * scale, cfg,
                                   real, nucleus)  # fmt: skip
        target = target.shift(*offset)
        truth = galsim.Convolve(target, psf).drawImage(nx=size, ny=size, scale=scale).array
        room = noiseless_fit(truth, centre, sigma, morphology)
        fits = room.fits
        smallest = kind != "cosmos" and r_drawn * shrink <= cfg.rhalf_range_px[0]
        if fits or redraws == cfg.fit_tries or smallest:
            break
        # shrink by what the apertures (linear) or the sky (area) lack: 0.5-0.8x a step (a
        # stamp with no sky left beyond 2 R_p says it lacks everything, not by how much)
        lack = 0.8  # no Petrosian radius inside the stamp: the light runs off it
        if np.isfinite(room.r_petro):
            lack = min(room.r_inside / room.aperture, math.sqrt(room.sky_pixels / room.sky_needed))
        shrink *= float(np.clip(0.95 * lack, 0.5, 0.8))
        if kind != "cosmos":
            shrink = max(shrink, cfg.rhalf_range_px[0] / r_drawn)
    r_half_px = r_drawn * shrink

    scene = galsim.ImageD(size, size, scale=scale)
    scene.array[:] = truth
    if neighbours:
        galsim.Convolve(galsim.Add(neighbours), psf).drawImage(scene, add_to_image=True)
    noisy = scene.array + sky_noise(
        rng,
        scene.array.shape,
        sigma=sigma,
        correlated_fraction=cfg.correlated_noise_fraction,
    )
    if cfg.exposure_time_s:
        # drawn after the sky noise: the sky realisation does not depend on the exposure
        noisy += source_noise(rng, scene.array, cfg.exposure_time_s)
    params = {
        "kind": kind,
        "mag": mag,
        "r_half_px": r_half_px,
        "r_half_px_drawn": r_drawn,
        "size_redraws": redraws,
        "size_factor": shrink,
        "stamp_fits": bool(fits),
        "z": z,
        "n_neighbours": len(neighbours),
        "x_offset_px": float(offset[0] / scale),
        "y_offset_px": float(offset[1] / scale),
        **info,
    }
    if cfg.cosmos_dir:  # one schema for the whole store
        params.setdefault("cosmos_index", -1)
    return SimulatedGalaxy(
        index,
        galaxy_id(cfg.seed, index),
        noisy.astype(np.float32),
        truth.astype(np.float32),
        sigma,
        params,
        scene.array.astype(np.float32),
    )


def simulate(cfg: SimulateConfig, n: int, start: int = 0) -> Iterator[SimulatedGalaxy]:
    """Galaxies ``start`` .. ``start + n - 1``."""
    for i in range(start, start + n):
        yield simulate_galaxy(i, cfg)


def write_stamps(
    cfg: SimulateConfig, n: int, out: str | Path, *, progress: bool = True
) -> list[Path]:
    """Simulate ``n`` galaxies as FITS stamps in the folder ``out`` (``casnet stamps``).

    Each ``stamp_NNNNN.fits`` holds the observed image in its primary HDU and the noiseless truth
    in HDU ``TRUTH``; the header records the seed, index, sky noise, pixel scale, galaxy id and
    every simulated parameter (``HIERARCH SIM <NAME>``; an undefined, NaN one is left out: FITS
    headers cannot hold NaN).
    """
    import sys

    from astropy.io import fits
    from tqdm import tqdm

    from casnet.data.io.fits import write_image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    galaxies = simulate(cfg, n=n)
    for g in tqdm(galaxies, total=n, desc="stamps", file=sys.stderr, disable=not progress):
        header = fits.Header()
        header["SEED"] = (cfg.seed, "casnet simulate master seed")
        header["INDEX"] = (g.index, "galaxy index in the simulation")
        header["SKYSIG"] = (g.sky_sigma, "per-pixel sky noise added")
        header["PIXSCALE"] = (cfg.pixel_scale, "arcsec/pixel")
        header["GALID"] = (g.galaxy_id, "casnet galaxy id")
        for key, value in g.params.items():
            if isinstance(value, float) and not math.isfinite(value):
                continue
            header[f"HIERARCH SIM {key.upper()}"] = value
        path = out / f"stamp_{g.index:05d}.fits"
        write_image(path, g.image, header=header, extra={"TRUTH": g.truth})
        paths.append(path)
    return paths
