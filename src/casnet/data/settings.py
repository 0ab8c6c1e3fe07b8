"""Settings of the data stages (``params.yaml`` sections ``data``, ``simulate``, ``clean``,
``ingest``, ``select``, ``split``, ``augment``, ``store``; Tohill et al. 2021 Sec. 3.1-3.2), and the
rendering of the vendored real galaxies (:class:`RealSuiteConfig`, read by the real suite)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from casnet.core.config import Section, short_repr
from casnet.morphology.settings import (
    JOIN_FRACTION,
    OVERLAP_SADDLE,
    SOURCE_CONTRAST,
    JoinFraction,
    OverlapSaddle,
    SourceContrast,
)

__all__ = [
    "REAL_MORPHOLOGY_SHARES",
    "AugmentConfig",
    "CleanConfig",
    "DataConfig",
    "IngestConfig",
    "RealSuiteConfig",
    "SelectConfig",
    "SimulateConfig",
    "SplitConfig",
    "StoreConfig",
]


class DataConfig(Section):
    """What the pipeline starts from (``dvc.yaml`` stage ``source``)."""

    source: Literal["simulate", "ingest"] = Field(
        "simulate", description="GalSim simulator (default) or real FITS ingest"
    )
    n_galaxies: int = Field(
        500, ge=1, description="galaxies simulated (paper scale: ~150,000 before the cuts)"
    )
    input: tuple[str, ...] = Field(
        (), description="ingest: FITS cutouts (files, folders, globs) or one mosaic"
    )
    catalog: str | None = Field(None, description="ingest: positions on the mosaic")
    labels: str | None = Field(None, description="ingest: external C/A label catalogue")

    @model_validator(mode="after")
    def _check_inputs(self) -> DataConfig:
        if self.source == "ingest" and not self.input:
            raise ValueError("source 'ingest' needs data.input (FITS files, folders or globs)")
        return self


#: the shares of issue 29's real-morphology structure (all 0:
#: :meth:`SimulateConfig.without_real_morphology`)
REAL_MORPHOLOGY_SHARES = (
    "irregular_fraction",
    "ragged_fraction",
    "complex_clumps_fraction",
    "clumpy_arms_fraction",
    "bulgeless_fraction",
    "offcentre_bulge_fraction",
    "disturbed_spheroid_fraction",
    "double_nucleus_fraction",
    "nucleated_fraction",
)


class SimulateConfig(Section):
    """GalSim stamps of CANDELS F160W-like galaxies (Tohill et al. 2021 Sec. 2.1, Figs. 1-3).

    Magnitudes follow N(m) ~ 10^(mag_slope m) inside ``mag_range``; half-light radii follow a
    log-normal size-magnitude relation (median ``rhalf_px_at_23`` at H = 23, changing by
    ``rhalf_mag_slope`` dex per magnitude, ``rhalf_scatter_dex`` scatter) clipped to
    ``rhalf_range_px``. The population mixes bulge+disk systems with the given fractions of
    clumpy star-forming galaxies, mergers / close pairs and compact spheroids.
    """

    seed: int = Field(20210401, ge=0, description="master seed; each galaxy derives its own")
    stamp_size: int = Field(101, ge=15, le=1001, description="stamp side (px)")
    pixel_scale: float = Field(0.06, gt=0.0, description="arcsec per pixel")
    zero_point: float = Field(25.946, description="AB zero point (mag for 1 count/s), F160W")
    depth_5sigma: float = Field(
        27.7, description="5-sigma point-source limit (AB mag) in a 0.2 arcsec-radius aperture"
    )
    exposure_time_s: float | None = Field(
        10_000.0,
        gt=0.0,
        description="exposure (s) for the sources' Poisson noise: ~4 orbits of "
        "F160W, CANDELS/Deep (~12 orbits over Y, J, H; Grogin et al. 2011); null: none",
    )
    correlated_noise_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="share of the noise variance that is correlated (COSMOS)"
    )
    mag_range: tuple[float, float] = Field(
        (19.5, 24.5),
        description="H magnitudes of the targets: to H = 24.5, the limit to which sizes and shapes "
        "of CANDELS F160W galaxies are measured reliably (van der Wel et al. 2012)",
    )
    mag_slope: float = Field(
        0.3,
        description="number-count slope, N(m) ~ 10^(slope m): 0.31 for F160W counts fainter than "
        "H = 20 (Yan et al. 1998); 0.1 before 2026-12-01 over-represented bright galaxies ~5x",
    )
    neighbour_mag_range: tuple[float, float] = Field(
        (21.0, 27.0), description="H magnitudes of unrelated neighbours (drawn with mag_slope)"
    )
    rhalf_px_at_23: float = Field(
        7.0, gt=0.0,
        description='median half-light radius (px) at H = 23: 0.42", roughly the median of the '
        "H-band GALFIT sizes of CANDELS (van der Wel et al. 2012; not fitted to the catalogue, "
        "which cannot be downloaded here)",
    )  # fmt: skip
    rhalf_mag_slope: float = Field(
        -0.08, description="dex of r_half per magnitude (sizes fall with H, Yan et al. 1998)"
    )
    rhalf_scatter_dex: float = Field(0.2, ge=0.0)
    rhalf_range_px: tuple[float, float] = Field((1.0, 20.0), description="half-light radii (px)")
    clumpy_fraction: float = Field(0.2, ge=0.0, le=1.0, description="RandomKnots star-formers")
    merger_fraction: float = Field(
        0.15, ge=0.0, le=1.0, description="mergers: host + overlapping companion + tails/shells"
    )
    spheroid_fraction: float = Field(0.15, ge=0.0, le=1.0, description="compact spheroids")
    arms_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="disks (not edge-on) drawn with spiral arms"
    )
    lopsided_fraction: float = Field(
        0.3, ge=0.0, le=1.0, description="disks drawn with an off-centre (m = 1) component"
    )
    disk_thickness: float = Field(
        0.2, gt=0.0, le=1.0, description="intrinsic axis ratio q0 of disks (edge-on q)"
    )
    # --- real morphology (issue 29; benchmarks/realgap.md). All 0: the simulator before it,
    # bit for bit (these draws come from a second random stream)
    irregular_fraction: float = Field(
        0.1, ge=0.0, le=1.0,
        description="irregular galaxies: no smooth disk, patchy one-sided light and clump "
        "complexes (the rest of the kinds keep their shares; disks take what is left)",
    )  # fmt: skip
    ragged_fraction: float = Field(
        0.8, ge=0.0, le=1.0,
        description="disks whose smooth disk is patchy (log-normal random field) and lopsided "
        "(an m = 1 mode growing outwards)",
    )  # fmt: skip
    ragged_strength: tuple[float, float] = Field(
        (0.15, 1.0),
        description="range of the log-normal strength s of a ragged disk's patchiness; its m = 1 "
        "amplitude is drawn over the same range",
    )
    complex_clumps_fraction: float = Field(
        0.7, ge=0.0, le=1.0,
        description="clumpy disks whose clumps are irregular complexes of many sizes, often on "
        "one side, instead of round Gaussian knots",
    )  # fmt: skip
    clumpy_arms_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="spiral arms broken into knots"
    )
    bulgeless_fraction: float = Field(
        0.4, ge=0.0, le=1.0,
        description="disks without a bulge, Sersic n 0.4-1 (the low C of real late types)",
    )  # fmt: skip
    offcentre_bulge_fraction: float = Field(
        0.3, ge=0.0, le=1.0, description="bulges displaced 0.05-0.35 r_half from the disk centre"
    )
    disturbed_spheroid_fraction: float = Field(
        0.6, ge=0.0, le=1.0,
        description="spheroids with a faint offset envelope (5-25% of the light) or a displaced "
        "core",
    )  # fmt: skip
    double_nucleus_fraction: float = Field(
        0.5, ge=0.0, le=1.0,
        description="mergers whose companion is 0.15-0.6 r_half from the host (double nuclei)",
    )  # fmt: skip
    nucleated_fraction: float = Field(
        0.08, ge=0.0, le=1.0,
        description="bulge + disk galaxies that are nucleated disks instead: an unresolved "
        "nucleus with 20-40% of the light on a bulgeless exponential disk of r_half 9-13 px "
        "(the C > 4 tail; shared/design.md sec. 8)",
    )  # fmt: skip
    fit_tries: int = Field(
        8, ge=0, le=50,
        description="redraws at 0.8x the size of a galaxy that does not fit its stamp",
    )  # fmt: skip
    neighbour_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="stamps with unrelated neighbours / stars"
    )
    star_fraction: float = Field(0.3, ge=0.0, le=1.0, description="neighbours that are stars")
    cosmos_dir: str | None = Field(
        None,
        description="folder of a GalSim COSMOS catalogue (galsim_download_cosmos): real "
        "morphologies convolved to the F160W-like PSF (casnet.data.cosmos); null: none",
    )
    cosmos_file: str = Field(
        "real_galaxy_catalog_25.2.fits", min_length=1, description="the catalogue in cosmos_dir"
    )
    cosmos_fraction: float = Field(
        1.0, ge=0.0, le=1.0, description="share of the galaxies drawn from COSMOS (with cosmos_dir)"
    )
    psf_wavelength_nm: float = Field(1545.0, gt=0.0)
    psf_diameter_m: float = Field(2.4, gt=0.0)
    psf_obscuration: float = Field(0.33, ge=0.0, lt=1.0)
    psf_native_pixel_arcsec: float = Field(
        0.128,
        ge=0.0,
        description='detector pixel the PSF is convolved with (WFC3/IR: 0.128"; '
        "drizzling keeps its response); 0: none",
    )
    psf_kernel_sigma_arcsec: float = Field(
        0.034,
        ge=0.0,
        description="Gaussian for the inter-pixel capacitance, the residual "
        'wavefront error and drizzling: 0.034" gives FWHM 0.18" on the 0.06" grid (CANDELS '
        'F160W) and 0.146" before pixelation (WFC3 IHB Table 7.5: 0.151" at 1.6 um)',
    )
    psf_file: str | None = Field(
        None, description="FITS image of a tabulated PSF (e.g. a TinyTim F160W model) instead"
    )
    psf_file_scale: float | None = Field(
        None, gt=0.0, description="arcsec/px of psf_file (default: its PIXSCALE, or pixel_scale)"
    )

    def without_real_morphology(self) -> SimulateConfig:
        """These settings with every share of issue 29's real-morphology structure at 0: the
        simulator before it, bit for bit (the baseline of ``casnet benchmark realtrain``)."""
        return self.model_copy(update=dict.fromkeys(REAL_MORPHOLOGY_SHARES, 0.0))

    @model_validator(mode="after")
    def _check_ranges(self) -> SimulateConfig:
        for name in ("mag_range", "neighbour_mag_range", "rhalf_range_px", "ragged_strength"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ValueError(f"{name} must be (low, high) with low < high, got {(lo, hi)}")
        total = (
            self.clumpy_fraction
            + self.merger_fraction
            + self.spheroid_fraction
            + self.irregular_fraction
        )
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"clumpy + merger + spheroid + irregular fractions must not exceed 1, got "
                f"{total:.3f}"
            )
        return self


class CleanConfig(Section):
    """galclean neighbour removal (Ferreira et al. 2018; Tohill et al. 2021 Sec. 3.1)."""

    k_sigma: float = Field(
        4.0, gt=0.0, description="segmentation threshold: median + k sigma of the sky (galclean: 4)"
    )
    npixels: int = Field(10, ge=1, description="minimum connected pixels of a segment")
    smooth_fwhm: float = Field(2.0, ge=0.0, description="FWHM (px) of the detection smoothing")
    target_dilate: int = Field(
        5, ge=0, le=50, description="dilation (px) of the central segment, protected from cleaning"
    )
    other_dilate: int = Field(
        3,
        ge=0,
        le=50,
        description="least growth (px) of a neighbour's footprint before replacement; it grows "
        "on while its light around it is >= 0.15 sigma",
    )
    source_contrast: SourceContrast = SOURCE_CONTRAST
    overlap_saddle: OverlapSaddle = OVERLAP_SADDLE
    join_fraction: JoinFraction = JOIN_FRACTION
    seed: int = Field(12345, ge=0, description="master seed; each galaxy derives its own")


class IngestConfig(Section):
    """Reading real FITS data into a stamp store."""

    stamp_size: int = Field(101, ge=15, le=2001, description="side (px) of the stored stamps")
    hdu: int | str | None = Field(None, description="HDU index or EXTNAME; None: first image HDU")
    id_column: str = Field("galaxy_id", min_length=1, description="catalogue id column")
    ra_column: str = Field("ra", min_length=1)
    dec_column: str = Field("dec", min_length=1)
    x_column: str = Field("x", min_length=1, description="0-based pixel x (used without WCS)")
    y_column: str = Field("y", min_length=1)
    max_edge_fraction: float = Field(
        0.25, ge=0.0, le=1.0, description="cutouts padded beyond this fraction are rejected"
    )


#: measurement flags that remove a galaxy from the training set by default
DEFAULT_EXCLUDED_FLAGS = (
    "BAD_INPUT",
    "NO_SOURCE",
    "NO_PETROSIAN",
    "NON_POSITIVE_FLUX",
    "SKY_FAILED",
    "EDGE",
    "APERTURE_CLIPPED",
    "CENTRE_SHIFT",
    "NOT_CONVERGED",
    "STAMP_FILLED",
)


class SelectConfig(Section):
    """Training-set selection (Tohill et al. 2021 Sec. 3.1): cuts, then crop + normalise."""

    snr_min: float = Field(2.0, ge=0.0, description="keep SNR_p > snr_min (paper: 2)")
    r_petro_min: float = Field(5.0, ge=0.0, description="keep R_p > r_petro_min px (paper: 5)")
    exclude_flags: tuple[str, ...] = Field(
        DEFAULT_EXCLUDED_FLAGS, description="measurement flags (names) that remove a galaxy"
    )
    exclude_clean_flags: tuple[str, ...] = Field(
        ("BLENDED", "FAILED"),
        description="galclean flags (names) that remove a galaxy: BLENDED = light of another "
        "source knowingly left in the stamp",
    )
    crop_size: int = Field(60, ge=8, le=1000, description="network input side (paper: 60 px)")

    @model_validator(mode="after")
    def _check_flags(self) -> SelectConfig:
        from casnet.core.flags import CleanFlag, Flag

        for names, family in ((self.exclude_flags, Flag), (self.exclude_clean_flags, CleanFlag)):
            unknown = [f for f in names if f not in family.__members__]
            if unknown:
                allowed = ", ".join(n for n in family.__members__ if n != "NONE")
                raise ValueError(f"unknown flag names {short_repr(unknown)}; allowed: {allowed}")
        return self


class SplitConfig(Section):
    """Train/validation/test split by a hash of galaxy_id (stable when galaxies are added)."""

    train: float = Field(0.8, gt=0.0, lt=1.0)
    val: float = Field(0.1, gt=0.0, lt=1.0)
    test: float = Field(0.1, gt=0.0, lt=1.0)
    seed: int = Field(0, ge=0, description="salt of the hash: another seed, another split")

    @model_validator(mode="after")
    def _check_sum(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"train + val + test must be 1, got {total:.6g}")
        return self


class AugmentConfig(Section):
    """Selective augmentation of rare C/A bins of the training set (Sec. 3.2)."""

    bins: int = Field(10, ge=2, le=200, description="bins of the C and of the A distribution")
    half_fraction: float = Field(
        0.6, gt=0.0, le=1.0,
        description="bins holding <= this fraction of the median count get one 90 deg rotation",
    )  # fmt: skip
    rare_fraction: float = Field(
        0.25, gt=0.0, le=1.0,
        description="bins holding <= this fraction get three rotations and two mirrors",
    )  # fmt: skip

    @model_validator(mode="after")
    def _check_order(self) -> AugmentConfig:
        if self.rare_fraction > self.half_fraction:
            raise ValueError(
                f"rare_fraction ({self.rare_fraction}) must not exceed half_fraction "
                f"({self.half_fraction})"
            )
        return self


class StoreConfig(Section):
    """On-disk stamp stores (Zarr images + Parquet catalogue)."""

    chunk_size: int = Field(
        64, ge=1, le=65536, description="galaxies per chunk: the memory bound and the unit of work"
    )


class RealSuiteConfig(Section):
    """The 88 vendored COSMOS HST galaxies rendered as CANDELS F160W stamps (issue 29;
    :mod:`casnet.data.real`): each galaxy seen ``views`` times, at magnitudes evenly spaced over
    ``mag_offset_range`` relative to its F814W magnitude, moved fainter where its own HST noise
    would be more than ``max_own_noise_share`` of the noise variance in the stamp. Never
    training data.

    The defaults, measured 2026-12-07 on the default simulator (CANDELS-deep H = 27.7): re-rendered
    on the F160W grid a galaxy's own noise is 0.00025-0.0062 counts/s per pixel per count/s of its
    flux, 15% of the stamp's noise variance at H = F814W + 0.9 (median; - 0.6 to + 1.7), so the
    floor, not ``mag_offset_range``, sets the brightest view of 87 of the 88 galaxies. 4 views over
    + 0 .. + 0.75 give 352 stamps, own-noise share 1.6-15.9%, statmorph's S/N per pixel 0.3-7.0
    (>= 2.5: 47 views of 26 galaxies). S/N and the own share rise together: a share of 10% / 20% /
    30% gives 24 / 71 / 110 views at S/N >= 2.5 (of clumpy, irregular or merging galaxies 0 / 9 /
    21; at 15%, 5): faint 1-orbit ACS cutouts cannot be both high-S/N and clean.
    """

    views: int = Field(
        4, ge=1, le=64, description="views of each galaxy: one magnitude and rotation each"
    )
    mag_offset_range: tuple[float, float] = Field(
        (0.0, 0.75),
        description="H - F814W (mag) of a galaxy's views, evenly spaced from the first value to "
        "the second (no K-correction: the F814W image stands in for F160W); the whole ladder "
        "moves fainter where max_own_noise_share demands it",
    )
    max_own_noise_share: float = Field(
        0.15,
        gt=0.0,
        le=1.0,
        description="largest share of the per-pixel noise variance in a stamp that may be the "
        "galaxy's own HST noise, as measured on each view (README of data/real_galaxies: "
        "H >~ F814W + 0.9 at CANDELS-deep depth for 15%); 1: no floor",
    )
    rotation: Literal["random", "grid", "none"] = Field(
        "random",
        description="angle of each view: uniform in [0, 360) deg from the seed, views spread "
        "evenly over 360 deg, or none",
    )
    seed: int = Field(29, ge=0, description="master seed; each view derives its own streams")
    stamp_size: int | None = Field(
        None, ge=15, le=1001, description="stamp side (px); null: simulate.stamp_size"
    )
    max_galaxies: int | None = Field(
        None, ge=1, description="the first N galaxies of the catalogue only (tests); null: all 88"
    )

    @model_validator(mode="after")
    def _check_offsets(self) -> RealSuiteConfig:
        lo, hi = self.mag_offset_range
        if not lo <= hi:
            raise ValueError(
                f"mag_offset_range must be (low, high) with low <= high, got {(lo, hi)}"
            )
        return self
