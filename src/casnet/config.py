"""Typed, validated configuration: the only reader of ``params.yaml``.

Every knob of the project lives in ``params.yaml`` (one section per concern). It is loaded once, at
the edge (CLI, stage, MLflow entry point), into the frozen objects below and passed down explicitly.
An unknown key or a bad value fails at load time with a message naming the key, the value and what
is allowed, never deep inside a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from casnet.errors import CasnetConfigError
from casnet.paths import project_root

__all__ = [
    "ArchitectureConfig",
    "AugmentConfig",
    "BenchmarkConfig",
    "CleanConfig",
    "DaskConfig",
    "DataConfig",
    "IngestConfig",
    "ModelConfig",
    "MorphologyConfig",
    "Params",
    "SearchConfig",
    "SelectConfig",
    "SimulateConfig",
    "SplitConfig",
    "StoreConfig",
    "load_params",
    "override",
    "parse_params",
]


_S = TypeVar("_S", bound="_Section")


#: What is a distinct source and what is the galaxy's own (casnet.morphology.segmentation
#: .group_sources): one definition for the measurement and for galclean, which must agree on what
#: "the target" is. The defaults are the library's (segmentation.SOURCE_CONTRAST, JOIN_FRACTION;
#: a test ties them).
SourceContrast = Annotated[
    float,
    Field(
        ge=0.0,
        le=1.0,
        description="a piece is a distinct source when its light above its saddle is at least "
        "this fraction of the target segment's (segmentation.group_sources); 0: every piece",
    ),
]
JoinFraction = Annotated[
    float,
    Field(gt=0.0, le=1.0, description="pieces join down to this fraction of the threshold"),
]
_SOURCE_CONTRAST = 0.03
_JOIN_FRACTION = 0.5


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class MorphologyConfig(_Section):
    """Settings of the conventional CAS measurement (Tohill et al. 2021 Sec. 2.2-2.3).

    Defaults follow the paper (and MORFOMETRYKA where the paper is silent).
    """

    eta: float = Field(0.2, gt=0.0, lt=1.0, description="Petrosian eta (paper and MFMTK: 0.2)")
    annulus_inner: float = Field(
        0.8, gt=0.0, lt=1.0, description="inner edge of the eta annulus, in units of r"
    )
    annulus_outer: float = Field(
        1.25, gt=1.0, le=3.0, description="outer edge of the eta annulus, in units of r"
    )
    aperture_rp: float = Field(
        1.5,
        gt=0.0,
        le=5.0,
        description="curve-of-growth region for C, in R_p (paper 1.5; newer MFMTK 2.0)",
    )
    asymmetry_aperture_rp: float = Field(
        1.5, gt=0.0, le=5.0, description="asymmetry aperture, in R_p (paper Sec. 2.3: 1.5)"
    )
    sky_clip_sigma: float = Field(3.0, gt=0.0, description="sigma of the sky sigma-clipping")
    sky_clip_iters: int = Field(5, ge=1, le=50)
    sky_exclude_rp: float = Field(
        2.0,
        gt=0.0,
        le=10.0,
        description="the sky is re-measured beyond this many R_p (the galaxy's wings excluded)",
    )
    detect_nsigma: float = Field(
        1.5, gt=0.0, description="detection threshold above the sky, in sky sigma"
    )
    detect_npixels: int = Field(10, ge=1, description="minimum connected pixels of a source")
    smooth_fwhm: float = Field(
        2.0, ge=0.0, description="FWHM (px) of the Gaussian smoothing before detection"
    )
    target_radius: float = Field(
        10.0, gt=0.0, description="the target must come within this distance (px) of the centre"
    )
    deblend: bool = Field(
        True, description="separate touching neighbours from the target (segmentation.segment)"
    )
    deblend_nlevels: int = Field(32, ge=1, le=256)
    deblend_contrast: float = Field(
        0.001, ge=0.0, le=1.0, description="photutils contrast of the candidate pieces"
    )
    source_contrast: SourceContrast = _SOURCE_CONTRAST
    join_fraction: JoinFraction = _JOIN_FRACTION
    mask_dilate: int = Field(
        3, ge=0, le=50, description="dilation (px) of source masks for sky statistics and cells"
    )
    subsample: int = Field(
        4, ge=1, le=16, description="sub-pixels per pixel side for the curve of growth"
    )
    subsample_radius: float = Field(
        15.0, ge=0.0, description="pixels beyond this radius (px) are split 2x2 only (cost)"
    )
    interpolation_order: Literal[1, 3] = Field(
        3, description="spline order of the 180-degree rotation (MFMTK: cubic)"
    )
    sky_cell_size: int = Field(10, ge=3, le=100, description="sky cell side (px), paper: 10")
    min_sky_cells: int = Field(3, ge=1, description="fewer usable cells raise a flag")
    max_sky_cells: int = Field(
        40, ge=1, description="cells used at most for the background term (evenly spread)"
    )
    max_centre_shift_rp: float = Field(
        0.5, gt=0.0, description="largest allowed asymmetry-centre shift from the centroid, in R_p"
    )
    aperture_centre: Literal["asymmetry", "centroid"] = Field(
        "asymmetry",
        description="centre of the Petrosian, concentration and asymmetry apertures: the "
        "asymmetry centre (Conselice 2003, statmorph) or the light-weighted centroid",
    )
    aperture_shape: Literal["ellipse", "circle"] = Field(
        "ellipse",
        description="shape of the apertures: the Petrosian ellipse (q, pa from second moments; "
        "the paper and MORFOMETRYKA) or circles (statmorph, Conselice 2003); q and pa are "
        "reported either way",
    )
    asymmetry_signal_nsigma: float | None = Field(
        2.5,
        gt=0.0,
        description="residual pixels whose smoothed |I - I_180| exceeds this many sigma of the "
        "smoothed noise get the noise term of their signal, not the full sky term; null: the "
        "paper's sky term everywhere (biased low for asymmetric galaxies: -0.09 at SNR_p 10)",
    )
    centre_xtol: float = Field(
        0.01, gt=0.0, le=1.0, description="tolerance (px) of the asymmetry-centre minimiser"
    )
    min_size: int = Field(15, ge=5, description="smallest stamp side (px) that is measured")
    gain: float | None = Field(
        None, gt=0.0, description="e-/ADU for source Poisson errors; None: sky noise only"
    )


class DataConfig(_Section):
    """What the pipeline starts from (``dvc.yaml`` stage ``source``)."""

    source: Literal["simulate", "ingest"] = Field(
        "simulate", description="GalSim simulator (default) or real FITS ingest"
    )
    n_galaxies: int = Field(
        1000, ge=1, description="galaxies simulated (paper scale: ~150,000 before the cuts)"
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


class SimulateConfig(_Section):
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
    correlated_noise_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="share of the noise variance that is correlated (COSMOS)"
    )
    mag_range: tuple[float, float] = Field((19.5, 26.5), description="H magnitude range")
    mag_slope: float = Field(0.1, description="number counts slope: N(m) ~ 10^(slope m)")
    rhalf_px_at_23: float = Field(8.0, gt=0.0, description="median half-light radius at H=23")
    rhalf_mag_slope: float = Field(-0.06, description="dex of r_half per magnitude")
    rhalf_scatter_dex: float = Field(0.2, ge=0.0)
    rhalf_range_px: tuple[float, float] = Field((1.0, 20.0), description="half-light radii (px)")
    clumpy_fraction: float = Field(0.2, ge=0.0, le=1.0, description="RandomKnots star-formers")
    merger_fraction: float = Field(0.12, ge=0.0, le=1.0, description="close pairs + tidal plume")
    spheroid_fraction: float = Field(0.15, ge=0.0, le=1.0, description="compact spheroids")
    neighbour_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="stamps with unrelated neighbours / stars"
    )
    star_fraction: float = Field(0.3, ge=0.0, le=1.0, description="neighbours that are stars")
    psf_wavelength_nm: float = Field(1545.0, gt=0.0)
    psf_diameter_m: float = Field(2.4, gt=0.0)
    psf_obscuration: float = Field(0.33, ge=0.0, lt=1.0)
    psf_file: str | None = Field(
        None, description="FITS image of a tabulated PSF (e.g. a TinyTim F160W model) instead"
    )
    psf_file_scale: float | None = Field(
        None, gt=0.0, description="arcsec/px of psf_file (default: its PIXSCALE, or pixel_scale)"
    )

    @model_validator(mode="after")
    def _check_ranges(self) -> SimulateConfig:
        for name in ("mag_range", "rhalf_range_px"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ValueError(f"{name} must be (low, high) with low < high, got {(lo, hi)}")
        total = self.clumpy_fraction + self.merger_fraction + self.spheroid_fraction
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"clumpy + merger + spheroid fractions must not exceed 1, got {total:.3f}"
            )
        return self


class CleanConfig(_Section):
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
    source_contrast: SourceContrast = _SOURCE_CONTRAST
    join_fraction: JoinFraction = _JOIN_FRACTION
    seed: int = Field(12345, ge=0, description="master seed; each galaxy derives its own")


class IngestConfig(_Section):
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
_DEFAULT_EXCLUDED = (
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


class SelectConfig(_Section):
    """Training-set selection (Tohill et al. 2021 Sec. 3.1): cuts, then crop + normalise."""

    snr_min: float = Field(2.0, ge=0.0, description="keep SNR_p > snr_min (paper: 2)")
    r_petro_min: float = Field(5.0, ge=0.0, description="keep R_p > r_petro_min px (paper: 5)")
    exclude_flags: tuple[str, ...] = Field(
        _DEFAULT_EXCLUDED, description="measurement flags (names) that remove a galaxy"
    )
    exclude_clean_flags: tuple[str, ...] = Field(
        ("BLENDED", "FAILED"),
        description="galclean flags (names) that remove a galaxy: BLENDED = light of another "
        "source knowingly left in the stamp",
    )
    crop_size: int = Field(60, ge=8, le=1000, description="network input side (paper: 60 px)")

    @model_validator(mode="after")
    def _check_flags(self) -> SelectConfig:
        from casnet.flags import CleanFlag, Flag

        for names, family in ((self.exclude_flags, Flag), (self.exclude_clean_flags, CleanFlag)):
            unknown = [f for f in names if f not in family.__members__]
            if unknown:
                allowed = ", ".join(n for n in family.__members__ if n != "NONE")
                raise ValueError(f"unknown flag names {unknown}; allowed: {allowed}")
        return self


class SplitConfig(_Section):
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


class AugmentConfig(_Section):
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


class ArchitectureConfig(_Section):
    """One network of the CASNET space (Tohill et al. 2021 Table 1)."""

    blocks: int = Field(3, ge=1, le=6)
    conv_per_block: int = Field(2, ge=1, le=4)
    filters: int = Field(32, ge=1, description="filters of the first block (doubling per block)")
    dense_layers: int = Field(2, ge=0, le=8)
    dense_units: int = Field(1024, ge=1)
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    optimizer: Literal["adam", "adadelta", "rmsprop", "sgd", "adamax"] = "adamax"
    learning_rate: float = Field(0.001, gt=0.0)
    batch_size: int = Field(512, ge=1)


class ModelConfig(_Section):
    """Architectures trained without tuning: the paper's Table 1 optima per target."""

    asymmetry: ArchitectureConfig = ArchitectureConfig()
    concentration: ArchitectureConfig = ArchitectureConfig(
        filters=64, dense_units=512, dropout=0.55, optimizer="adam"
    )


def _powers_of_two(lo: int, hi: int) -> list[int]:
    out, v = [], 1
    while v <= hi:
        if v >= lo:
            out.append(v)
        v *= 2
    return out


class SearchConfig(_Section):
    """The Bayesian-optimisation search space and budget (Sec. 3.3-3.4; the demo may shrink it)."""

    blocks: tuple[int, int] = Field((1, 3), description="convolutional blocks (min, max)")
    conv_per_block: tuple[int, int] = Field((1, 2), description="3x3 convolutions per block")
    filters: tuple[int, int] = Field((8, 256), description="first-block filters, powers of two")
    dense_layers: tuple[int, int] = Field((1, 4))
    dense_units: tuple[int, int] = Field((128, 1024), description="powers of two")
    dropout: tuple[float, float] = Field((0.25, 0.60), description="continuous")
    optimizers: tuple[Literal["adam", "adadelta", "rmsprop", "sgd", "adamax"], ...] = (
        "adam", "adadelta", "rmsprop", "sgd", "adamax",
    )  # fmt: skip
    learning_rates: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1)
    batch_sizes: tuple[int, ...] = (256, 512)
    max_trials: int = Field(20, ge=1)
    num_initial_points: int = Field(5, ge=1)
    seed: int = Field(1, ge=0)
    max_epochs: int = Field(300, ge=1, description="paper: 300")
    patience: int = Field(30, ge=1, description="early-stopping patience on validation loss")

    @model_validator(mode="after")
    def _check_space(self) -> SearchConfig:
        for name in ("blocks", "conv_per_block", "filters", "dense_layers", "dense_units",
                     "dropout"):  # fmt: skip
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} must be (min, max) with min <= max, got {(lo, hi)}")
        for name in ("filters", "dense_units"):
            if not _powers_of_two(*getattr(self, name)):
                raise ValueError(f"{name} range {getattr(self, name)} holds no power of two")
        if not (0 <= self.dropout[0] and self.dropout[1] < 1):
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        return self

    def powers(self, name: str) -> list[int]:
        """The powers of two of the ``filters`` or ``dense_units`` range."""
        return _powers_of_two(*getattr(self, name))


class StoreConfig(_Section):
    """On-disk stamp stores (Zarr images + Parquet catalogue)."""

    chunk_size: int = Field(
        64, ge=1, le=65536, description="galaxies per chunk: the memory bound and the unit of work"
    )


class DaskConfig(_Section):
    """Where the parallel stages run (simulate, clean, measure)."""

    scheduler: str | None = Field(
        None, description="address of a running scheduler (tcp://host:8786); None: LocalCluster"
    )
    workers: int | None = Field(
        None, ge=0, description="LocalCluster worker processes; None: all cores; 0: in-process"
    )


class BenchmarkConfig(_Section):
    """Settings of ``casnet benchmark``."""

    n: int = Field(200, ge=1, description="galaxies measured")
    repeats: int = Field(1, ge=1, description="repeats; the median is reported")
    statmorph_n: int | None = Field(
        None, ge=1, description="galaxies given to statmorph (None: same as n)"
    )


class NoiseSuiteConfig(_Section):
    """The noise suite (Tohill et al. 2021 Sec. 4.2, Figs. 8-10)."""

    snr_min: float = Field(10.0, gt=0, description="galaxies with SNR_p above this ...")
    max_delta_a: float = Field(
        0.01, gt=0, description="... whose network and conventional A agree this well"
    )
    snr_grid: tuple[float, ...] = Field(
        (10, 9, 8, 7, 6, 5, 4, 3, 2), description="target SNR_p values; the first is the reference"
    )
    max_galaxies: int | None = Field(None, ge=1, description="cap on the sample (None: all)")
    seed: int = Field(7, ge=0)

    @model_validator(mode="after")
    def _check_grid(self) -> NoiseSuiteConfig:
        if not self.snr_grid or min(self.snr_grid) <= 0:
            raise ValueError(f"snr_grid must hold positive values, got {self.snr_grid}")
        return self


class RedshiftSuiteConfig(_Section):
    """The redshift suite (Sec. 4.3, Figs. 11-13): nearby galaxies moved to higher z."""

    z_grid: tuple[float, ...] = Field(
        (0.2, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0),
        description="redshifts; the first is the reference",
    )
    n_galaxies: int = Field(100, ge=1, description="simulated nearby (Frei-like) sample")
    native_redshift: float = Field(0.01, gt=0, description="redshift of the nearby images")
    native_pixel_scale: float = Field(
        1.0, gt=0, description="arcsec/px of the nearby images (Frei et al. 1996: ~1.2-1.4)"
    )
    native_size: int = Field(256, ge=64, description="side of the simulated nearby images (px)")
    h0: float = Field(70.0, gt=0, description="cosmology: H0 (km/s/Mpc)")
    om0: float = Field(0.3, gt=0, lt=1, description="cosmology: Omega_m (flat LCDM)")
    size_evolution: float = Field(-0.97, description="R ~ (1+z)^beta (Whitney et al. 2019)")
    sb_evolution: float = Field(-0.13, description="mu(z) = mu(0) (1+z)^alpha")
    snr_min: float = Field(2.0, gt=0, description="keep galaxies above this SNR_p at every z")
    input: str | None = Field(
        None, description="folder of nearby FITS images instead of the simulated sample"
    )
    sky_image: str | None = Field(
        None,
        description="FITS image of real (source-free) sky to cut backgrounds from, "
        "instead of simulated correlated noise",
    )
    seed: int = Field(11, ge=0)


class EvaluateConfig(_Section):
    """Evaluation of registered models (``casnet evaluate``, Sec. 4)."""

    noise: NoiseSuiteConfig = NoiseSuiteConfig()
    redshift: RedshiftSuiteConfig = RedshiftSuiteConfig()
    batch_size: int = Field(512, ge=1, description="stamps per network call")


class Params(_Section):
    """All of ``params.yaml``."""

    data: DataConfig = DataConfig()
    morphology: MorphologyConfig = MorphologyConfig()
    simulate: SimulateConfig = SimulateConfig()
    clean: CleanConfig = CleanConfig()
    ingest: IngestConfig = IngestConfig()
    select: SelectConfig = SelectConfig()
    split: SplitConfig = SplitConfig()
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig = ModelConfig()
    search: SearchConfig = SearchConfig()
    store: StoreConfig = StoreConfig()
    dask: DaskConfig = DaskConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    @model_validator(mode="after")
    def _check_crop_fits(self) -> Params:
        stamp = (
            self.simulate.stamp_size if self.data.source == "simulate" else self.ingest.stamp_size
        )
        if self.select.crop_size > stamp:
            section = "simulate" if self.data.source == "simulate" else "ingest"
            raise ValueError(
                f"select.crop_size ({self.select.crop_size}) is larger than "
                f"{section}.stamp_size ({stamp}): the crop must fit in the stamps"
            )
        return self


def _format_validation_error(
    exc: ValidationError, source: str, root: type[BaseModel] | None = None
) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        msg = err["msg"].removeprefix("Value error, ")
        if not key:  # a check across sections: its message names the keys
            lines.append(f"  {msg}")
        elif err["type"] == "extra_forbidden":
            section = _section_for(err["loc"][:-1], root or Params)
            allowed = ", ".join(sorted(section.model_fields)) if section else "?"
            lines.append(f"  {key} = {value!r}: unknown key; allowed keys here: {allowed}")
        else:
            lines.append(f"  {key} = {value!r}: {msg}")
    return "\n".join(lines)


def _section_for(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    model = root
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return None
        model = field.annotation
    return model


def parse_params(data: Mapping[str, Any] | None, *, source: str = "params") -> Params:
    """Validate a mapping (the parsed YAML) into :class:`Params`.

    Raises
    ------
    CasnetConfigError
        Naming every bad key, its value and what is allowed.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise CasnetConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        return Params.model_validate(dict(data))
    except ValidationError as exc:
        raise CasnetConfigError(_format_validation_error(exc, source)) from None


def override(section: _S, *, source: str = "command line", **changes: Any) -> _S:
    """A copy of ``section`` with ``changes`` (``None`` values ignored), validated like the file.

    Used for command-line flags that override ``params.yaml``; a bad value fails with the same
    kind of message as a bad key in the file.
    """
    update = {k: v for k, v in changes.items() if v is not None}
    if not update:
        return section
    try:
        return type(section).model_validate({**section.model_dump(), **update})
    except ValidationError as exc:
        raise CasnetConfigError(_format_validation_error(exc, source, type(section))) from None


def load_params(path: str | Path | None = None) -> Params:
    """Load and validate ``params.yaml``.

    Parameters
    ----------
    path : str or Path, optional
        The file; default: ``params.yaml`` at the project root. A missing default file gives the
        built-in defaults (so the library works outside a checkout); a missing explicit file is an
        error.
    """
    explicit = path is not None
    file = Path(path) if explicit else project_root() / "params.yaml"
    if not file.exists():
        if explicit:
            raise CasnetConfigError(f"{file}: parameters file not found")
        return Params()
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise CasnetConfigError(f"{file}: not valid YAML: {exc}") from None
    return parse_params(data, source=str(file))
