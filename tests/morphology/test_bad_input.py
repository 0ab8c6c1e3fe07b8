"""measure() on bad input: it never raises; every problem is a flag bit and a reason.

Fatal problems (FATAL bits) leave C and A NaN; warnings leave the values measured.
"""

from __future__ import annotations

import math

import galsim
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from casnet.morphology import FATAL, Flag, Measurement, measure
from casnet.morphology.growth import GrowthCurve
from casnet.morphology.petrosian import petrosian_radius

SIZE = 81
PSF_FWHM = 2.5


def galaxy(offset=(0.3, -0.2), *, flux: float = 1.0, size: int = SIZE) -> np.ndarray:
    """Noise-free PSF-convolved exponential (r_e = 4 px), centred ``offset`` from the centre."""
    profile = galsim.Convolve(
        galsim.Sersic(1.0, half_light_radius=4.0, flux=flux), galsim.Gaussian(fwhm=PSF_FWHM)
    )
    return profile.drawImage(nx=size, ny=size, scale=1.0, offset=offset).array.astype(np.float64)


def twins(d: float, sigma: float = 1.0) -> np.ndarray:
    """Two equal compact sources at +-d px along x from the stamp centre (exactly symmetric)."""
    source = galsim.Gaussian(sigma=sigma, flux=0.3)
    pair = source.shift(d, 0.0) + source.shift(-d, 0.0)
    return pair.drawImage(nx=SIZE, ny=SIZE, scale=1.0).array.astype(np.float64)


#: per-pixel noise: 1/50 of the peak of galaxy(), a bright but realistic source
SIGMA = galaxy().max() / 50


def noise(seed: int, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, SIGMA, (size, size))


@pytest.fixture(scope="module")
def clean():
    image = galaxy() + noise(1)
    m = measure(image)
    assert m.flag == 0, m.flag_reasons
    return image, m


def assert_fatal(m: Measurement, flag: Flag, words: str) -> None:
    assert isinstance(m, Measurement)
    assert m.flag & flag, m.flag_reasons
    assert m.flag & FATAL
    assert flag.name in m.flag_reasons
    assert words in m.flag_reasons
    assert math.isnan(m.concentration)
    assert math.isnan(m.asymmetry)
    assert math.isnan(m.r_petro)


# --- warnings: the values are still measured ------------------------------------------------


def test_nan_and_inf_pixels_are_flagged_and_excluded(clean):
    """A NaN block in the sky, scattered +-inf, NaNs on the galaxy's outskirts: flagged, and the
    measurement moves by less than its statistical error (observed |dC| = 5e-4, |dA| = 4e-3)."""
    image, m0 = clean
    bad = image.copy()
    bad[5:8, 60:64] = np.nan
    bad[70, 10] = np.inf
    bad[3, 3] = -np.inf
    bad[40, 52] = np.nan  # ~12 px from the centre, inside the 1.5 R_p aperture
    m = measure(bad)
    assert m.flag == Flag.INVALID_PIXELS, m.flag_reasons
    assert "INVALID_PIXELS" in m.flag_reasons
    assert "15 NaN/inf" in m.flag_reasons
    # statistical errors here: sigma_C = 0.02, sigma_A = 0.015
    assert m.concentration == pytest.approx(m0.concentration, abs=0.02)
    assert m.asymmetry == pytest.approx(m0.asymmetry, abs=0.01)


def test_masked_pixels_are_flagged(clean):
    image, m0 = clean
    mask = np.zeros(image.shape, dtype=bool)
    mask[10:14, 10:14] = True
    m = measure(image, mask=mask)
    assert m.flag == Flag.INVALID_PIXELS, m.flag_reasons
    assert "16 pixels excluded" in m.flag_reasons
    assert m.concentration == pytest.approx(m0.concentration, abs=0.02)


def test_source_on_the_edge_is_flagged():
    """A bright galaxy 9 px right of the centre of a 41 px stamp (11 px from the edge): its segment
    runs into the edge (in each of 8 noise realisations tried). EDGE (and the aperture is
    clipped), but not fatal: the values are measured on what is there. (A source much farther out
    is no longer the target: nothing comes within target_radius of the centre, NO_SOURCE.)"""
    m = measure(galaxy(offset=(9.3, -0.2), flux=20.0, size=41) + noise(2, size=41))
    assert m.flag & Flag.EDGE, m.flag_reasons
    assert "edge" in m.flag_reasons
    assert m.flag & Flag.APERTURE_CLIPPED
    assert not m.flag & FATAL
    assert math.isfinite(m.concentration) and math.isfinite(m.asymmetry)


def test_far_off_centre_source_is_not_the_target():
    m = measure(galaxy(offset=(30.3, -0.2)) + noise(2))
    assert_fatal(m, Flag.NO_SOURCE, "of the centre")


def test_two_equal_sources_apart_are_ambiguous():
    """Compact twins 6 px either side of the centre in point-symmetric noise, so that everything
    (segments included) is symmetric and the centre pixel lies on neither segment: AMBIGUOUS_TARGET,
    and one twin is measured, the other masked (centroid on a twin)."""
    sym = noise(1)
    sym = (sym + sym[::-1, ::-1]) / math.sqrt(2)
    m = measure(twins(6.0) + sym)
    assert m.flag & Flag.AMBIGUOUS_TARGET, m.flag_reasons
    assert "equally close" in m.flag_reasons
    assert not m.flag & FATAL
    assert min(abs(m.x_centroid - 46.0), abs(m.x_centroid - 34.0)) < 0.5
    assert m.y_centroid == pytest.approx(40.0, abs=0.5)


def test_two_equal_sources_apart_are_ambiguous_in_any_noise():
    flagged = [
        bool(measure(twins(6.0) + noise(seed)).flag & Flag.AMBIGUOUS_TARGET) for seed in range(6)
    ]
    assert all(flagged), flagged


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_touching_equal_sources_measure_one_of_them(seed):
    """Extended twins 8 px either side of the centre merge into one detection that the deblending
    splits along the symmetry line, so the centre pixel lies on one of them: that one is measured
    with the other masked. Its centroid is on a twin (the blend's is at the centre) and C is that
    of a single galaxy in the same noise: observed within 0.09 (the masked twin's wings still reach
    into the aperture); tolerance 0.15, while the blend would give C ~ 1.6 vs 2.6. No flag is
    raised although the choice is arbitrary: only a centre pixel on neither segment counts as
    ambiguous."""
    single = measure(galaxy(offset=(0.0, 0.0)) + noise(seed))
    m = measure(galaxy(offset=(8.0, 0.0)) + galaxy(offset=(-8.0, 0.0)) + noise(seed))
    assert not m.flag & FATAL, m.flag_reasons
    assert min(abs(m.x_centroid - 48.0), abs(m.x_centroid - 32.0)) < 0.5
    assert m.concentration == pytest.approx(single.concentration, abs=0.15)


# --- fatal problems -------------------------------------------------------------------------

FATAL_CASES = {
    "all zeros": (np.zeros((SIZE, SIZE)), Flag.SKY_FAILED, "sky sigma"),
    "constant": (np.full((SIZE, SIZE), 3.0), Flag.SKY_FAILED, "sky sigma"),
    "all negative": (-np.abs(noise(5)) - 1.0, Flag.NO_SOURCE, "nothing above"),
    "pure noise": (noise(6), Flag.NO_SOURCE, "nothing above"),
    "all NaN": (np.full((SIZE, SIZE), np.nan), Flag.BAD_INPUT, "no valid pixel"),
    "1-D": (np.ones(SIZE), Flag.BAD_INPUT, "2-D"),
    "3-D": (np.ones((2, SIZE, SIZE)), Flag.BAD_INPUT, "2-D"),
    "0-D": (np.float64(1.0), Flag.BAD_INPUT, "2-D"),
    "tiny 5x5": (galaxy()[38:43, 38:43], Flag.BAD_INPUT, "smaller than"),
    "string": ("galaxy", Flag.BAD_INPUT, "not numeric"),
    "object": (object(), Flag.BAD_INPUT, "not numeric"),
    "ragged list": ([[1.0, 2.0], [3.0]], Flag.BAD_INPUT, "not numeric"),
    "None": (None, Flag.BAD_INPUT, "2-D"),
}


@pytest.mark.parametrize("case", list(FATAL_CASES))
def test_fatal_input_is_flagged_with_nan_values(case):
    image, flag, words = FATAL_CASES[case]
    assert_fatal(measure(image), flag, words)


def test_mask_of_wrong_shape_is_bad_input(clean):
    image, _ = clean
    assert_fatal(measure(image, mask=np.zeros((10, 10), dtype=bool)), Flag.BAD_INPUT, "mask shape")


def test_mask_covering_everything_is_bad_input(clean):
    image, _ = clean
    mask = np.ones(image.shape, dtype=bool)
    assert_fatal(measure(image, mask=mask), Flag.BAD_INPUT, "no valid pixel")


# --- units: scale invariance ------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_measurement_does_not_depend_on_units(clean, scale):
    """Every step is linear in the image or a ratio: physical units (e.g. erg/s/cm^2/Hz ~ 1e-30)
    give the same C and A (observed equal to 1e-13)."""
    image, m0 = clean
    m = measure(image * scale)
    assert m.flag == 0, m.flag_reasons
    assert m.concentration == pytest.approx(m0.concentration, abs=1e-6)
    assert m.asymmetry == pytest.approx(m0.asymmetry, abs=1e-6)


# --- never raises ------------------------------------------------------------------------------

small_images = arrays(
    np.float64,
    array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
    elements=st.floats(allow_nan=True, allow_infinity=True),
)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow in sums of ~1e308 values
@settings(max_examples=20, deadline=None, derandomize=True)
@given(image=small_images)
def test_measure_never_raises_on_arbitrary_arrays(image):
    m = measure(image)
    assert isinstance(m, Measurement)
    if m.flag & FATAL:
        assert math.isnan(m.concentration) and math.isnan(m.asymmetry)
    else:
        assert math.isfinite(m.concentration)


# --- known failures (bugs in src, see the report) ----------------------------------------------


def test_measure_never_raises_on_constant_image_with_hot_pixels():
    """A constant pedestal that is not a round number plus four hot pixels: the float rounding of
    the mean gives a sky sigma ~1e-9 (not exactly 0, so no SKY_FAILED), the hot pixels are
    'detected', and the Petrosian search starts from a NaN eta."""
    image = np.full((15, 39), -8253438.279791152)
    image[2, 25] = -8253376.918252695
    image[6, 38] = -8253437.122713969
    image[7, 15] = -8253423.121825065
    image[12, 15] = -8253425.357419268
    assert isinstance(measure(image), Measurement)


def test_petrosian_radius_tolerates_nan_eta_before_the_crossing():
    """A curve with no light and no area between r = 0.6 and 1.0 px (eta(0.75) = 0/0) and eta = 0
    at r = 1 (nothing in the annulus 0.8-1.25): R_p is the first valid crossing, or NaN, not an
    exception."""
    r = np.arange(0.0, 5.0, 0.1)
    area = np.where(r <= 0.6, math.pi * r**2, math.pi * 0.36)
    area = np.where(r > 1.0, math.pi * (r**2 - 1.0 + 0.36), area)
    flux = np.minimum(r, 0.6) ** 2 / 0.36  # a unit disc of light inside 0.6 px
    curve = GrowthCurve(r, flux, area, r_inside=4.0)
    r_p = petrosian_radius(curve)
    assert math.isnan(r_p) or r_p > 0


@pytest.mark.parametrize("scale", [1e160, 1e-200])
def test_measure_never_raises_at_extreme_scales(clean, scale):
    image, _ = clean
    assert isinstance(measure(image * scale), Measurement)


def test_a_target_whose_deblended_pieces_all_lie_off_centre_is_measured_whole():
    """The science run of 2026-12-07 stopped on one simulated galaxy (``tests/data/
    deblend_off_centre.fits``: two bright clumps either side of an empty centre): deblending split
    the target into pieces whose centres all lay farther than the target's maximum distance, and
    ``segment`` raised "target label 0 is not in the pieces". The undeblended segment (both
    clumps, one galaxy) stays the target."""
    from pathlib import Path

    from astropy.io import fits

    from casnet.morphology.measurement import detect_target, first_guess_sky
    from casnet.morphology.settings import MorphologyConfig

    fixture = Path(__file__).resolve().parents[1] / "data" / "deblend_off_centre.fits"
    with fits.open(fixture) as hdus:
        image = hdus[0].data.astype(np.float64)
        replaced = hdus["REPLACED"].data.astype(bool)
    cfg = MorphologyConfig()
    arr = np.where(replaced, 0.0, image)
    sky = first_guess_sky(arr, mask=replaced, clip_sigma=cfg.sky_clip_sigma,
                          maxiters=cfg.sky_clip_iters)  # fmt: skip
    seg = detect_target(arr, sky, cfg, invalid=replaced)
    assert seg.target != 0
    # both clumps (at x, y = 43, 48 and 58, 66 in the diagnostic figure) are the target's
    assert seg.labels[48, 43] == seg.target and seg.labels[66, 58] == seg.target
    m = measure(image, replaced=replaced)
    assert not m.flag & FATAL and math.isfinite(m.concentration) and math.isfinite(m.asymmetry)
    assert m.asymmetry > 0.3  # two unequal clumps: a lopsided galaxy
