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
from pathlib import Path

import galsim
import numpy as np
import pandas as pd

from casnet.core.figures import save_figure, stamp_grid
from casnet.core.flags import BAD_VALUES, Flag
from casnet.core.quantities import TARGETS, quantity
from casnet.data.noise import sky_noise
from casnet.data.preprocess import CROP_SIZE
from casnet.data.psf import psf_model
from casnet.data.settings import SimulateConfig
from casnet.data.simulate import sky_sigma_per_pixel
from casnet.evaluation.cosmology import (
    angular_scale,
    apparent_flux,
    cosmology,
    sb_evolution_mag,
)
from casnet.evaluation.figures import deviation_vs_grid
from casnet.evaluation.nearby import NearbyGalaxy, nearby_sample, user_sample
from casnet.evaluation.noise import deviation_summary
from casnet.evaluation.predictor import Predictor
from casnet.evaluation.result import SuiteResult
from casnet.evaluation.settings import RedshiftSuiteConfig
from casnet.morphology import measure
from casnet.morphology.settings import MorphologyConfig

__all__ = [
    "REFERENCE_EXCLUDE",
    "NearbyGalaxy",
    "angular_scale",
    "apparent_flux",
    "bookkeeping",
    "cosmology",
    "half_light_radius",
    "nearby_sample",
    "rebin",
    "redshift_suite",
    "sky_cutout",
]

STAMP = 101


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


#: a reference (z = z_grid[0]) measurement with one of these flags is no reference: the galaxy
#: or its sky does not fit the stamp, or the measurement failed; such galaxies are left out and
#: counted (issue 16: at z = 0.2 large ellipticals filled the stamp and C came out 0.3-0.5 low)
REFERENCE_EXCLUDE = BAD_VALUES | Flag.EDGE | Flag.APERTURE_CLIPPED | Flag.STAMP_FILLED
#: the paper's mean dC (fractional) between these redshifts (Sec. 4.3): 15% network, 26% MFMTK
PAPER_DC_RANGE = (1.0, 3.0)
PAPER_DC = (0.15, 0.26)


def bookkeeping(sample: list[NearbyGalaxy], grid: list[float], cfg: RedshiftSuiteConfig,
                zero_point: float) -> pd.DataFrame:  # fmt: skip
    """What moving the sample to each z does, term by term (median over the galaxies, mag; a
    positive number dims): cosmological surface-brightness dimming 10 log10[(1+z)/(1+z0)], the
    size evolution at fixed luminosity -5 log10[((1+z)/(1+z0))^beta], the surface-brightness
    evolution term, their sum (the change of the mean surface brightness), the angular size
    factor a(z) and the apparent magnitude."""
    z0 = cfg.native_redshift
    mus = np.array([mean_surface_brightness(g, cfg) for g in sample])
    mags = np.array([g.abs_mag for g in sample])
    rows = []
    for z in grid:
        ratio = (1 + z) / (1 + z0)
        dimming = 10 * math.log10(ratio)
        size = 5 * cfg.size_evolution * math.log10(ratio)  # smaller at fixed L: brighter
        evolution = float(np.median([sb_evolution_mag(mu, z, cfg) for mu in mus]))
        pairs = zip(mags, mus, strict=True)
        flux = np.array([apparent_flux(m, mu, z, cfg, zero_point) for m, mu in pairs])
        rows.append(
            {
                "z": z,
                "angular_factor": angular_scale(z, cfg),
                "dimming_mag": dimming,
                "size_evolution_mag": size,
                "sb_evolution_mag": evolution,
                "surface_brightness_change_mag": dimming + size + evolution,
                "apparent_mag": float(np.median(zero_point - 2.5 * np.log10(flux))),
            }
        )
    return pd.DataFrame(rows)


def redshift_suite(
    predictor: Predictor,
    cfg: RedshiftSuiteConfig,
    sim: SimulateConfig,
    morphology: MorphologyConfig,
    out: str | Path,
) -> SuiteResult:
    """Run the redshift suite (``cfg``: params ``evaluate.redshift``) with the simulator's PSF,
    pixel scale, zero point and noise (``sim``) and the conventional measurement's settings.

    A galaxy is kept when its reference measurement is unflagged (:data:`REFERENCE_EXCLUDE`), its
    noiseless 1.5 R_p aperture fits the network's crop at the reference, and SNR_p > ``snr_min``
    at every z with no fatal flag (the paper's selection). Deviations per z from the reference,
    for both methods, and from the truth (the noiseless image at that z).
    """
    result = SuiteResult("redshift")
    sample = user_sample(cfg) if cfg.input else nearby_sample(cfg, sim.pixel_scale)
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
                         **{f"conv_{q}": getattr(m, q) for q in TARGETS},
                         **{f"true_{q}": getattr(t, q) for q in TARGETS},
                         "true_aperture_px": t.r_petro * morphology.aperture_rp})  # fmt: skip
            stamps.append(noisy.astype(np.float32))
    table = pd.DataFrame(rows)
    ref = table[table["z"] == grid[0]].set_index("galaxy_id")
    flagged = set(ref.index[(ref["conv_flag"] & int(REFERENCE_EXCLUDE)) != 0])
    too_large = set(ref.index[~(ref["true_aperture_px"] <= CROP_SIZE / 2)]) - flagged
    fatal = (table["conv_flag"] & int(BAD_VALUES)) != 0
    ok = (table["snr_p"] > cfg.snr_min) & ~fatal
    kept = table.loc[ok].groupby("galaxy_id")["z"].count() == len(grid)
    keep_ids = set(kept[kept].index) - flagged - too_large
    mask = table["galaxy_id"].isin(keep_ids).to_numpy()
    result.metrics.update({"n_galaxies": len(sample), "n_reference_flagged": len(flagged),
                           "n_reference_too_large": len(too_large),
                           "n_faint": len(sample) - len(flagged) - len(too_large) - len(keep_ids),
                           "n_kept": len(keep_ids)})  # fmt: skip
    books = bookkeeping(sample, grid, cfg, sim.zero_point)
    snr = table.loc[mask].groupby("z")["snr_p"].median()
    books["snr_p_median_kept"] = books["z"].map(snr)
    books["snr_p_median_all"] = books["z"].map(table.groupby("z")["snr_p"].median())
    result.tables["redshift_bookkeeping"] = books
    result.notes.append(_bookkeeping_note(books, cfg, result.metrics))
    if not keep_ids:
        result.summary.append({"quantity": f"redshift suite: no galaxy above SNR_p "
                                           f"{cfg.snr_min:g} at every z"})  # fmt: skip
        result.tables["redshift_galaxies"] = table
        return result
    table = table.loc[mask].reset_index(drop=True)
    kept_stamps = np.stack([s for s, m in zip(stamps, mask, strict=True) if m])
    preds = predictor.predict(kept_stamps)
    for t in TARGETS:
        table[f"net_{t}"] = preds[t].to_numpy(float)
    summary = deviation_summary(table, "z", grid[0])
    result.tables["redshift_galaxies"] = table
    result.tables["redshift_summary"] = summary
    _metrics(result, table, summary, grid)
    out = Path(out)
    result.figures.append(deviation_vs_grid(summary, "z", out / "redshift_deviation.png",
                                            reference=grid[0], suite="redshift suite"))  # fmt: skip
    vs_truth = summary.drop(columns=["mean", "std"]).rename(
        columns={"truth_mean": "mean", "truth_std": "std"})  # fmt: skip
    png = out / "redshift_vs_truth.png"
    result.figures.append(deviation_vs_grid(vs_truth, "z", png, "value minus the truth",
                                            suite="redshift suite"))  # fmt: skip
    result.figures.append(_tracks(table, grid[0], out / "redshift_tracks.png"))
    first = table.index[table["galaxy_id"] == table["galaxy_id"].iloc[0]]
    result.figures.append(stamp_grid([kept_stamps[j] for j in first],
                                     [f"z = {table.z[j]:g}" for j in first],
                                     out / "redshift_examples.png", ncols=5))  # fmt: skip
    return result


def _bookkeeping_note(books: pd.DataFrame, cfg: RedshiftSuiteConfig, counts: dict) -> str:
    """The dimming / evolution bookkeeping and the sample's funnel, as markdown."""
    cols = {"z": "z", "angular_factor": "a(z)", "dimming_mag": "dimming",
            "size_evolution_mag": "size evol.", "sb_evolution_mag": "SB evol.",
            "surface_brightness_change_mag": "net SB change", "apparent_mag": "median mag",
            "snr_p_median_all": "median SNR_p (all)",
            "snr_p_median_kept": "median SNR_p (kept)"}  # fmt: skip
    text = books[list(cols)].rename(columns=cols).to_markdown(index=False, floatfmt=".3g")
    return (f"Redshift suite: {counts['n_galaxies']} galaxies; {counts['n_reference_flagged']} "
            f"with a flagged reference and {counts['n_reference_too_large']} too large for the "
            f"crop at z = {cfg.z_grid[0]:g} (left out), {counts['n_faint']} below SNR_p "
            f"{cfg.snr_min:g} at some z, {counts['n_kept']} kept. Surface-brightness terms in "
            f"mag (positive dims; SB evolution exponent {cfg.sb_evolution:g}, size evolution "
            f"{cfg.size_evolution:g}):\n\n{text}")  # fmt: skip


def _metrics(result: SuiteResult, table: pd.DataFrame, summary: pd.DataFrame,
             grid: list[float]) -> None:  # fmt: skip
    lo, hi = PAPER_DC_RANGE
    for method, prefix in (("network", "net"), ("conventional", "conv")):
        s = summary[summary["method"] == method]
        for t in TARGETS:
            st = s[s["target"] == t]
            far = st[st["z"] == max(grid)]
            result.metrics[f"{method}_{t}_mean_dev_zmax"] = float(far["mean"].iloc[0])
            result.metrics[f"{method}_{t}_std_dev_zmax"] = float(far["std"].iloc[0])
            result.metrics[f"{method}_{t}_truth_mean_dev_zmax"] = float(far["truth_mean"].iloc[0])
            result.metrics[f"{method}_{t}_outliers"] = float((st["catastrophic"] * st["n"]).sum())
        # the paper's figure: the mean fractional change of C between z = 1 and 3
        col = f"{prefix}_concentration"
        ref = table[table["z"] == grid[0]].set_index("galaxy_id")[col]
        part = table[(table["z"] >= lo) & (table["z"] <= hi) & (table["z"] != grid[0])]
        frac = (part[col] / ref.reindex(part["galaxy_id"]).to_numpy(float) - 1).to_numpy(float)
        frac = frac[np.isfinite(frac)]
        result.metrics[f"{method}_concentration_mean_frac_dev_z1_3"] = (
            float(frac.mean()) if frac.size else np.nan)  # fmt: skip
        result.metrics[f"{method}_concentration_n_z1_3"] = float(frac.size)
    n13 = int(result.metrics["network_concentration_n_z1_3"])
    result.summary.append({"quantity": f"C mean fractional deviation, z = {lo:g}-{hi:g} (redshift)",
                           "network": result.metrics["network_concentration_mean_frac_dev_z1_3"],
                           "conventional":
                               result.metrics["conventional_concentration_mean_frac_dev_z1_3"],
                           "target": "concentration", "n": n13,
                           "paper": f"{PAPER_DC[0]:g} / {PAPER_DC[1]:g}"})  # fmt: skip
    for t in TARGETS:
        far = summary[(summary["method"] == "network") & (summary["target"] == t)
                      & (summary["z"] == max(grid))]  # fmt: skip
        n = int(far["n"].iloc[0]) if len(far) else 0
        x = quantity(t).symbol
        for what, key in (("mean deviation", "mean_dev_zmax"), ("scatter", "std_dev_zmax"),
                          ("mean minus truth", "truth_mean_dev_zmax")):  # fmt: skip
            row = {"quantity": f"{x} {what} at z = {max(grid):g} (redshift)", "target": t, "n": n}
            for method in ("network", "conventional"):
                row[method] = result.metrics[f"{method}_{t}_{key}"]
            result.summary.append(row)


def _tracks(table: pd.DataFrame, reference: float, out: Path) -> Path:
    """Each galaxy's dC and dA against z, network and conventional (Figs. 12-13, thin lines)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6.5))
    axes = fig.subplots(2, len(TARGETS), sharex=True, squeeze=False)
    for row, (method, prefix) in enumerate((("network", "net"), ("conventional", "conv"))):
        for col, t in enumerate(TARGETS):
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
