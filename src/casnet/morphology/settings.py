"""Settings of the conventional CAS measurement (``params.yaml`` section ``morphology``).

Owned by the measurement; :class:`SourceContrast` and :class:`JoinFraction` are also the cleaning's
(galclean must agree with the measurement on what "the target" is).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from casnet.core.config import Section

__all__ = [
    "JOIN_FRACTION",
    "OVERLAP_SADDLE",
    "SOURCE_CONTRAST",
    "JoinFraction",
    "MorphologyConfig",
    "OverlapSaddle",
    "SourceContrast",
]


#: What is a distinct source and what is the galaxy's own (casnet.morphology.segmentation
#: .group_sources): one definition for the measurement and for galclean, which must agree on what
#: "the target" is. The defaults below are segmentation's too.
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

OverlapSaddle = Annotated[
    float,
    Field(
        gt=0.0,
        description="a distinct source joined to the target by a saddle at least this fraction "
        "of the fainter peak is part of it (one body: a merging companion, a giant clump); "
        "> 1: never",
    ),
]

#: a region away from the centre is a distinct source when its light above the saddle by which it
#: joins the rest holds at least this fraction of the target detection segment's light
#: (segmentation's module docstring: 1 of 219 target pieces lost on 600 simulated stamps at 0.03,
#: 6 at 0.02, 25 at 0.01)
SOURCE_CONTRAST = 0.03
#: the watershed that joins pieces runs down to this fraction of the detection threshold: a
#: detached clump joins its galaxy at a lower threshold (half: 0.75 sky sigma on the smoothed image
#: at the default 1.5 sigma detection, ~2 sigma of the smoothed noise, where noise rarely bridges)
JOIN_FRACTION = 0.5
#: a *distinct* source is the target's too when the saddle by which it joins the target is at
#: least this fraction of the fainter of the two peaks (smoothed image): the valley between them
#: is shallow, the light never falls towards the sky, they are one body -- a merging companion or
#: a giant clump, whose light is the merger's asymmetry (issue 15). Measured on simulated stamps
#: (2026-12-01): resolved clumps and overlapping companions join at 0.25-0.83 of the fainter peak
#: (8 of 10 above 0.3), touching neighbours 2.3-3.2 half-light radii out at 0.11-0.23
OVERLAP_SADDLE = 0.3


class MorphologyConfig(Section):
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
    source_contrast: SourceContrast = SOURCE_CONTRAST
    overlap_saddle: OverlapSaddle = OVERLAP_SADDLE
    join_fraction: JoinFraction = JOIN_FRACTION
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
