"""The redshift suite (Tohill et al. 2021 Sec. 4.3, Figs. 11-13): nearby galaxies seen at high z.

A nearby galaxy image (native pixel scale ``p0`` at redshift ``z0``) is moved to each ``z`` of the
grid and observed like CANDELS F160W:

1. *Angular size*: one native pixel spans ``p0 a(z)`` arcsec with
   ``a(z) = [D_A(z0) / D_A(z)] [(1 + z) / (1 + z0)]^beta`` (angular-diameter distances from
   ``astropy.cosmology``; size evolution R ~ (1+z)^beta, beta = -0.97, Whitney et al. 2019).
2. *Flux-preserving rebinning* to 0.06"/px (GalSim ``InterpolatedImage`` drawn with the pixel
   response), with the F160W PSF convolved in the same step (or none, for tests).
3. *Flux*: the light is scaled to the galaxy's apparent flux at z,
   ``F(z) = F(z0) [D_L(z0) / D_L(z)]^2 s(z)``. Since ``D_L = (1+z)^2 D_A``, this is the
   cosmological surface-brightness dimming ``[(1 + z0) / (1 + z)]^4`` times the geometric area
   factor ``[D_A(z0) / D_A(z)]^2``; size evolution moves light at fixed luminosity. ``s(z)`` is
   the surface-brightness evolution ``mu(z) = mu(0) (1 + z)^alpha`` (alpha = -0.13), applied to
   the galaxy's mean surface brightness within its half-light radius ``mu0`` (mag/arcsec^2):
   ``s = 10^(-0.4 mu0 [(1 + z)^alpha - (1 + z0)^alpha])``.
4. *Background*: CANDELS-like sky noise (white + COSMOS-correlated, as in the simulator), or sky
   cut from a real image the user provides; stamps 101x101 (the network crops 60x60).

Galaxies are kept if SNR_p > ``snr_min`` at every z. Both methods measure every stamp; deviations
from the first grid value (z = 0.2) per z, individual tracks and outliers are reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import galsim
import numpy as np
import pandas as pd

from casnet.core.figures import save_figure, stamp_grid
from casnet.data.noise import sky_noise
from casnet.data.psf import psf_model
from casnet.data.settings import SimulateConfig
from casnet.data.simulate import disk_galaxy, flux_from_mag, sersic_profile, sky_sigma_per_pixel
from casnet.evaluation.figures import deviation_vs_grid
from casnet.evaluation.noise import deviation_summary
from casnet.evaluation.predictor import Predictor
from casnet.evaluation.result import SuiteResult
from casnet.evaluation.settings import RedshiftSuiteConfig
from casnet.morphology import FATAL, measure
from casnet.morphology.settings import MorphologyConfig

__all__ = [
    "NearbyGalaxy",
    "angular_scale",
    "apparent_flux",
    "cosmology",
    "half_light_radius",
    "nearby_sample",
    "rebin",
    "redshift_suite",
    "sky_cutout",
]

STAMP = 101


@dataclass(frozen=True)
class NearbyGalaxy:
    """A nearby galaxy: noiseless image (sum 1), its absolute magnitude and kind."""

    galaxy_id: str
    image: np.ndarray
    abs_mag: float
    kind: str


def cosmology(cfg: RedshiftSuiteConfig):
    """Flat LambdaCDM of the suite's params."""
    from astropy.cosmology import FlatLambdaCDM

    return FlatLambdaCDM(H0=cfg.h0, Om0=cfg.om0)


def angular_scale(z: float, cfg: RedshiftSuiteConfig) -> float:
    """``a(z)``: angular size at z over angular size at the native redshift (step 1)."""
    cosmo = cosmology(cfg)
    z0 = cfg.native_redshift
    geometric = float(cosmo.angular_diameter_distance(z0) / cosmo.angular_diameter_distance(z))
    return geometric * ((1 + z) / (1 + z0)) ** cfg.size_evolution


def apparent_flux(abs_mag: float, mu0: float, z: float, cfg: RedshiftSuiteConfig,
                  zero_point: float) -> float:  # fmt: skip
    """Counts/s of the galaxy at z (step 3), K-correction ignored."""
    cosmo = cosmology(cfg)
    m = abs_mag + float(cosmo.distmod(z).value)
    z0 = cfg.native_redshift
    dmu = mu0 * ((1 + z) ** cfg.sb_evolution - (1 + z0) ** cfg.sb_evolution)
    return flux_from_mag(m + dmu, zero_point)


def half_light_radius(image: np.ndarray) -> float:
    """Circular half-light radius (px) about the light-weighted centre, interpolated on the
    curve of growth of the pixels sorted by distance (negative and NaN pixels count as 0)."""
    img = np.clip(np.nan_to_num(image), 0, None)
    total = img.sum()
    yy, xx = np.indices(img.shape)
    cy, cx = (img * yy).sum() / total, (img * xx).sum() / total
    r = np.hypot(yy - cy, xx - cx).ravel()
    order = np.argsort(r)
    growth = np.cumsum(img.ravel()[order])
    return float(np.interp(0.5 * total, growth, r[order]))


def mean_surface_brightness(galaxy: NearbyGalaxy, cfg: RedshiftSuiteConfig) -> float:
    """mu0: mean surface brightness within the half-light radius at the native z (mag/arcsec2),
    rest-frame (without cosmological dimming)."""
    r_e = half_light_radius(galaxy.image) * cfg.native_pixel_scale
    cosmo = cosmology(cfg)
    m0 = galaxy.abs_mag + float(cosmo.distmod(cfg.native_redshift).value)
    return m0 + 2.5 * math.log10(2 * math.pi * r_e**2)


def rebin(image: np.ndarray, *, scale_in: float, scale_out: float, size: int,
          psf: galsim.GSObject | None) -> np.ndarray:  # fmt: skip
    """Resample ``image`` (``scale_in`` arcsec/px) onto ``size``^2 pixels of ``scale_out``,
    conserving flux (the sum, when the galaxy fits), optionally convolved with ``psf`` (step 2)."""
    image = np.asarray(image, dtype=np.float64)
    factor = int(scale_out // (2 * scale_in))
    offset = (0.0, 0.0)  # (x, y) arcsec: where the padding moved the image centre
    if factor >= 2:
        # block-sum first (exact flux conservation): an interpolant at a scale far finer than
        # the output pixels would make GalSim's FFTs needlessly (even impossibly) large. The
        # zero padding is split between both ends so that the light stays centred; an odd pad
        # leaves half a native pixel, undone by a shift of the profile.
        (h, w), ny, nx = image.shape, *(-(-n // factor) * factor for n in image.shape)
        y0, x0 = (ny - h) // 2, (nx - w) // 2
        padded = np.zeros((ny, nx))
        padded[y0 : y0 + h, x0 : x0 + w] = image
        offset = (((nx - w) % 2) * 0.5 * scale_in, ((ny - h) % 2) * 0.5 * scale_in)
        image = padded.reshape(ny // factor, factor, nx // factor, factor).sum(axis=(1, 3))
        scale_in *= factor
    pixels = galsim.Image(np.ascontiguousarray(image), scale=scale_in)
    interp = galsim.InterpolatedImage(pixels, normalization="flux").shift(*offset)
    profile = galsim.Convolve(interp, psf) if psf is not None else interp
    return profile.drawImage(nx=size, ny=size, scale=scale_out).array.astype(np.float64)


def nearby_sample(cfg: RedshiftSuiteConfig) -> list[NearbyGalaxy]:
    """A Frei-like nearby sample, simulated noiseless at the native scale: ellipticals, bulge +
    disk spirals and clumpy irregulars (concentrations ~2.4-5, asymmetries ~0.01-0.5)."""
    rng = np.random.default_rng(cfg.seed)
    seeing = galsim.Gaussian(fwhm=2 * cfg.native_pixel_scale)  # a ground-based nearby survey
    kinds = rng.choice(["elliptical", "spiral", "irregular"], size=cfg.n_galaxies,
                       p=[0.3, 0.5, 0.2])  # fmt: skip
    out = []
    for i, kind in enumerate(kinds):
        # half-light radius 1/40 to 1/10 of the image: the galaxy and its wings fit
        r_e = float(rng.uniform(0.025, 0.1)) * cfg.native_size * cfg.native_pixel_scale
        if kind == "elliptical":
            q = float(rng.uniform(0.6, 1.0))
            gal = sersic_profile(float(rng.uniform(3.0, 5.5)), r_e, 1.0).shear(
                q=q, beta=float(rng.uniform(0, 180)) * galsim.degrees)  # fmt: skip
        else:
            gal, _ = disk_galaxy(rng, 1.0, r_e, clumpy=kind == "irregular")
        image = galsim.Convolve(gal, seeing).drawImage(
            nx=cfg.native_size, ny=cfg.native_size, scale=cfg.native_pixel_scale).array  # fmt: skip
        out.append(NearbyGalaxy(f"nearby-{i:04d}", image / image.sum(),
                                float(rng.uniform(-23.0, -20.5)), str(kind)))  # fmt: skip
    return out


def _user_sample(cfg: RedshiftSuiteConfig) -> list[NearbyGalaxy]:
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


def _sky_image(path: str) -> np.ndarray:
    """A real sky image, background-subtracted (median), NaN where masked."""
    from casnet.core.errors import CasnetInputError
    from casnet.data.io.fits import read_image

    image = np.asarray(read_image(path)[0], dtype=np.float64)
    if min(image.shape) < STAMP:
        raise CasnetInputError(f"{path}: the sky image must be at least {STAMP}x{STAMP} px")
    return image - np.nanmedian(image)


def sky_cutout(sky: np.ndarray, shape: tuple[int, int], rng: np.random.Generator,
               tries: int = 50) -> np.ndarray:  # fmt: skip
    """A random ``shape`` cut of ``sky`` with no masked (NaN) pixel (step 4, real background).

    Raises
    ------
    ValueError
        When no clean cut is found in ``tries`` random placements.
    """
    h, w = shape
    for _ in range(tries):
        y = int(rng.integers(0, sky.shape[0] - h + 1))
        x = int(rng.integers(0, sky.shape[1] - w + 1))
        cut = sky[y : y + h, x : x + w]
        if np.isfinite(cut).all():
            return cut.copy()
    raise ValueError(f"no {h}x{w} region of the sky image without masked pixels")


def redshift_suite(
    predictor: Predictor,
    cfg: RedshiftSuiteConfig,
    sim: SimulateConfig,
    morphology: MorphologyConfig,
    out: str | Path,
) -> SuiteResult:
    """Run the redshift suite (``cfg``: params ``evaluate.redshift``) with the simulator's PSF,
    pixel scale, zero point and noise (``sim``) and the conventional measurement's settings."""
    result = SuiteResult("redshift")
    sample = _user_sample(cfg) if cfg.input else nearby_sample(cfg)
    psf = psf_model(sim)
    sky = _sky_image(cfg.sky_image) if cfg.sky_image else None
    sigma = sky_sigma_per_pixel(sim) if sky is None else float(np.nanstd(sky))
    grid = [float(z) for z in cfg.z_grid]
    rows, stamps = [], []
    for i, gal in enumerate(sample):
        mu0 = mean_surface_brightness(gal, cfg)
        for k, z in enumerate(grid):
            clean = rebin(gal.image, scale_in=cfg.native_pixel_scale * angular_scale(z, cfg),
                          scale_out=sim.pixel_scale, size=STAMP, psf=psf)  # fmt: skip
            clean *= apparent_flux(gal.abs_mag, mu0, z, cfg, sim.zero_point)
            rng = np.random.default_rng([cfg.seed, i, k])
            if sky is not None:
                noisy = clean + sky_cutout(sky, clean.shape, rng)
            else:
                share = sim.correlated_noise_fraction
                noisy = clean + sky_noise(rng, clean.shape, sigma=sigma, correlated_fraction=share)
            m = measure(noisy, config=morphology)
            t = measure(clean, config=morphology, noiseless_sigma=sigma)
            rows.append({"galaxy_id": gal.galaxy_id, "kind": gal.kind, "z": z,
                         "snr_p": m.snr_p, "conv_flag": int(m.flag),
                         "conv_concentration": m.concentration, "conv_asymmetry": m.asymmetry,
                         "true_concentration": t.concentration,
                         "true_asymmetry": t.asymmetry})  # fmt: skip
            stamps.append(noisy.astype(np.float32))
    table = pd.DataFrame(rows)
    fatal = (table["conv_flag"] & int(FATAL)) != 0
    ok = (table["snr_p"] > cfg.snr_min) & ~fatal
    kept = table.loc[ok].groupby("galaxy_id")["z"].count() == len(grid)
    keep_ids = set(kept[kept].index)
    mask = table["galaxy_id"].isin(keep_ids).to_numpy()
    result.metrics["n_galaxies"] = len(sample)
    result.metrics["n_kept"] = len(keep_ids)
    if not keep_ids:
        result.summary.append({"quantity": f"redshift suite: no galaxy above SNR_p "
                                           f"{cfg.snr_min:g} at every z"})  # fmt: skip
        result.tables["redshift_galaxies"] = table
        return result
    table = table.loc[mask].reset_index(drop=True)
    kept_stamps = np.stack([s for s, m in zip(stamps, mask, strict=True) if m])
    preds = predictor.predict(kept_stamps)
    for t in ("concentration", "asymmetry"):
        table[f"net_{t}"] = preds[t].to_numpy(float)
    summary = deviation_summary(table, "z", grid[0])
    result.tables["redshift_galaxies"] = table
    result.tables["redshift_summary"] = summary
    _metrics(result, summary, grid)
    out = Path(out)
    result.figures.append(deviation_vs_grid(summary, "z", out / "redshift_deviation.png"))
    result.figures.append(_tracks(table, grid[0], out / "redshift_tracks.png"))
    first = table.index[table["galaxy_id"] == table["galaxy_id"].iloc[0]]
    result.figures.append(stamp_grid([kept_stamps[j] for j in first],
                                     [f"z = {table.z[j]:g}" for j in first],
                                     out / "redshift_examples.png", ncols=5))  # fmt: skip
    return result


def _metrics(result: SuiteResult, summary: pd.DataFrame, grid: list[float]) -> None:
    for method in ("network", "conventional"):
        s = summary[summary["method"] == method]
        for t in ("concentration", "asymmetry"):
            st = s[s["target"] == t]
            far = st[st["z"] == max(grid)]
            result.metrics[f"{method}_{t}_mean_dev_zmax"] = float(far["mean"].iloc[0])
            result.metrics[f"{method}_{t}_std_dev_zmax"] = float(far["std"].iloc[0])
            result.metrics[f"{method}_{t}_outliers"] = float((st["catastrophic"] * st["n"]).sum())
    for t in ("concentration", "asymmetry"):
        far = summary[(summary["method"] == "network") & (summary["target"] == t)
                      & (summary["z"] == max(grid))]  # fmt: skip
        n = int(far["n"].iloc[0]) if len(far) else 0
        row = {"quantity": f"{t[0].upper()} mean deviation at z = {max(grid):g} (redshift)",
               "target": t, "n": n}  # fmt: skip
        row2 = {"quantity": f"{t[0].upper()} scatter at z = {max(grid):g} (redshift)",
                "target": t, "n": n}  # fmt: skip
        for method in ("network", "conventional"):
            row[method] = result.metrics[f"{method}_{t}_mean_dev_zmax"]
            row2[method] = result.metrics[f"{method}_{t}_std_dev_zmax"]
        result.summary += [row, row2]


def _tracks(table: pd.DataFrame, reference: float, out: Path) -> Path:
    """Each galaxy's dC and dA against z, network and conventional (Figs. 12-13, thin lines)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6.5))
    axes = fig.subplots(2, 2, sharex=True)
    for row, (method, prefix) in enumerate((("network", "net"), ("conventional", "conv"))):
        for col, t in enumerate(("concentration", "asymmetry")):
            ax = axes[row][col]
            for _, g in table.groupby("galaxy_id"):
                g = g.sort_values("z")
                ref = g.loc[g["z"] == reference, f"{prefix}_{t}"]
                if len(ref):
                    ax.plot(g["z"], g[f"{prefix}_{t}"] - float(ref.iloc[0]), lw=0.6, alpha=0.5)
            ax.axhline(0, color="k", lw=0.8)
            ax.set_title(f"{method}: delta {t}", fontsize=9)
            ax.set_xlabel("z")
    return save_figure(fig, out)
