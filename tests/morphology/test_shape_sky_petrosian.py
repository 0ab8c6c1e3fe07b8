"""Second moments, sky statistics, SNR_p and the Petrosian radius against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from photutils.segmentation import SegmentationImage, SourceCatalog
from scipy import stats
from scipy.optimize import brentq

from casnet.morphology.growth import GrowthCurve, growth_curve
from casnet.morphology.petrosian import petrosian_eta, petrosian_radius
from casnet.morphology.shape import elliptical_radius, second_moments
from casnet.morphology.sky import rough_sky, sky_background
from casnet.morphology.snr import snr_petrosian

# --- second moments --------------------------------------------------------------------------

X0, Y0 = 40.3, 38.7
SIGMA_MAJOR, SIGMA_MINOR, THETA = 6.0, 3.0, math.radians(30.0)


@pytest.fixture(scope="module")
def gaussian():
    """Elliptical Gaussian sampled at pixel centres (no noise): its second moments are exactly
    SIGMA_MAJOR^2 and SIGMA_MINOR^2 along THETA, up to the truncation at the stamp edge (6.5
    sigma_major: negligible) and aliasing (exp(-2 pi^2 sigma^2): negligible)."""
    yy, xx = np.indices((81, 81), dtype=float)
    dx, dy = xx - X0, yy - Y0
    u = dx * math.cos(THETA) + dy * math.sin(THETA)
    v = -dx * math.sin(THETA) + dy * math.cos(THETA)
    return np.exp(-0.5 * ((u / SIGMA_MAJOR) ** 2 + (v / SIGMA_MINOR) ** 2))


@pytest.fixture(scope="module")
def photutils_source(gaussian):
    segm = SegmentationImage(np.ones(gaussian.shape, dtype=int))
    return SourceCatalog(gaussian, segm)[0]


def test_centroid_matches_photutils(gaussian, photutils_source):
    """Both are the flux-weighted mean position over the same pixels: equal to rounding."""
    shape = second_moments(gaussian, np.ones(gaussian.shape, dtype=bool))
    assert shape.x == pytest.approx(float(photutils_source.x_centroid), abs=1e-9)
    assert shape.y == pytest.approx(float(photutils_source.y_centroid), abs=1e-9)
    assert shape.x == pytest.approx(X0, abs=1e-6)
    assert shape.y == pytest.approx(Y0, abs=1e-6)


def test_axis_ratio_matches_photutils(gaussian, photutils_source):
    """q = semiminor / semimajor rms length (photutils' semi*_axis are the sqrt of the covariance
    eigenvalues: the same definition); analytic value 0.5."""
    shape = second_moments(gaussian, np.ones(gaussian.shape, dtype=bool))
    ratio = float(photutils_source.semiminor_axis.value / photutils_source.semimajor_axis.value)
    assert shape.q == pytest.approx(ratio, rel=1e-9)
    assert shape.q == pytest.approx(SIGMA_MINOR / SIGMA_MAJOR, rel=1e-6)


def test_position_angle_matches_photutils(gaussian, photutils_source):
    """photutils' orientation: degrees counter-clockwise from +x in (-90, 90]; casnet's pa:
    radians in [0, pi), the same angle modulo pi."""
    shape = second_moments(gaussian, np.ones(gaussian.shape, dtype=bool))
    expected = math.radians(float(photutils_source.orientation.value)) % math.pi
    assert shape.pa == pytest.approx(expected, abs=1e-9)
    assert shape.pa == pytest.approx(THETA, abs=1e-6)


def test_second_moments_of_non_positive_source_is_none():
    image = -np.ones((20, 20))
    assert second_moments(image, np.ones(image.shape, dtype=bool)) is None


def test_elliptical_radius_encloses_pi_q_a_squared():
    """Points on the ellipse of semi-major axis a, axis ratio q, angle pa have radius a."""
    a, q, pa = 7.0, 0.4, 1.1
    t = np.linspace(0, 2 * np.pi, 50)
    x = a * np.cos(t) * math.cos(pa) - q * a * np.sin(t) * math.sin(pa)
    y = a * np.cos(t) * math.sin(pa) + q * a * np.sin(t) * math.cos(pa)
    np.testing.assert_allclose(elliptical_radius(x, y, q, pa), a, rtol=1e-12)


# --- sky --------------------------------------------------------------------------------------

SKY_LEVEL, SKY_SIGMA = 7.0, 2.5
N_SKY = 200 * 200


@pytest.fixture(scope="module")
def pure_noise():
    return np.random.default_rng(11).normal(SKY_LEVEL, SKY_SIGMA, (200, 200))


def clipped_sigma_ratio(clip: float = 3.0, iters: int = 5) -> float:
    """Iterated k-sigma clipping of a Gaussian converges to a truncated normal whose standard
    deviation s satisfies s = std of N(0, 1) truncated at +-clip s (here 0.9848)."""
    s = 1.0
    for _ in range(iters):
        s = stats.truncnorm(-clip * s, clip * s).std()
    return s


def test_sky_background_mean_of_pure_noise(pure_noise):
    """Mean within 4 standard errors (sigma / sqrt(N) = 0.0125)."""
    sky = sky_background(pure_noise)
    assert sky.mean == pytest.approx(SKY_LEVEL, abs=4 * SKY_SIGMA / math.sqrt(N_SKY))
    assert sky.n_pixels == N_SKY


def test_sky_background_sigma_of_pure_noise(pure_noise):
    """3-sigma clipping trims the Gaussian's tails: sigma comes out 0.985 of the true one (computed
    above). The standard error of a standard deviation from N = 40000 is 0.35%: rtol 1.5%."""
    sky = sky_background(pure_noise)
    assert sky.sigma == pytest.approx(SKY_SIGMA * clipped_sigma_ratio(), rel=0.015)


def test_sky_background_ignores_masked_and_non_finite(pure_noise):
    image = pure_noise.copy()
    image[:50] = 1e6  # a "source", masked
    image[60, 60] = np.nan
    mask = np.zeros(image.shape, dtype=bool)
    mask[:50] = True
    sky = sky_background(image, mask=mask)
    assert sky.n_pixels == N_SKY - 50 * 200 - 1
    assert sky.mean == pytest.approx(SKY_LEVEL, abs=4 * SKY_SIGMA / math.sqrt(sky.n_pixels))


def test_sky_background_of_nothing_is_nan():
    sky = sky_background(np.full((10, 10), np.nan))
    assert math.isnan(sky.mean) and math.isnan(sky.sigma) and sky.n_pixels == 0


def test_rough_sky_of_pure_noise(pure_noise):
    """Median and MAD-based sigma (1.4826 MAD): unbiased for a Gaussian; the standard error of the
    MAD estimate is 1.65x that of the standard deviation (0.6% here): rtol 2.5%."""
    sky = rough_sky(pure_noise)
    assert sky.mean == pytest.approx(SKY_LEVEL, abs=5 * SKY_SIGMA / math.sqrt(N_SKY))
    assert sky.sigma == pytest.approx(SKY_SIGMA, rel=0.025)


# --- SNR_p ------------------------------------------------------------------------------------


def test_snr_petrosian_formula():
    """SNR_p = L(<R_p) / (q pi R_p^2 sigma): 100 / (0.5 pi 25 0.2) = 12.732..."""
    assert snr_petrosian(100.0, 5.0, 0.5, 0.2) == pytest.approx(
        100.0 / (0.5 * math.pi * 5.0), 1e-12
    )
    assert snr_petrosian(100.0, 5.0, 0.5, 0.2) == pytest.approx(12.732395447351628, rel=1e-12)


@pytest.mark.parametrize(
    ("flux", "r_petro", "q", "sigma"),
    [(1.0, 0.0, 0.5, 1.0), (1.0, -2.0, 0.5, 1.0), (1.0, 2.0, 0.0, 1.0), (1.0, 2.0, 0.5, 0.0),
     (math.nan, 2.0, 0.5, 1.0), (1.0, math.nan, 0.5, 1.0), (math.inf, 2.0, 0.5, 1.0)],
)  # fmt: skip
def test_snr_petrosian_is_nan_for_invalid_inputs(flux, r_petro, q, sigma):
    assert math.isnan(snr_petrosian(flux, r_petro, q, sigma))


def test_snr_petrosian_may_be_negative():
    """A negative flux is finite: SNR_p < 0 (not NaN) tells a real measurement of nothing."""
    assert snr_petrosian(-10.0, 2.0, 1.0, 1.0) < 0


# --- Petrosian radius --------------------------------------------------------------------------


def analytic_curve(light, r_max: float = 100.0, dr: float = 0.1) -> GrowthCurve:
    """A GrowthCurve of circular apertures built from an enclosed-light function, area pi r^2."""
    r = np.arange(0.0, r_max + dr / 2, dr)
    return GrowthCurve(r, light(r), math.pi * r**2, r_inside=r_max)


def exponential_light(r, h: float = 4.0):
    """Enclosed light of an exponential disk of scale length h (unit total)."""
    x = np.asarray(r) / h
    return 1.0 - (1.0 + x) * np.exp(-x)


def test_petrosian_eta_of_exponential():
    """eta from the curve (linear interpolation on a 0.1 px grid) against the closed form; the
    interpolation of a smooth curve is good to ~1e-4 relative here."""
    curve = analytic_curve(exponential_light)
    r = np.array([2.0, 5.0, 10.0, 20.0])
    annulus = (exponential_light(1.25 * r) - exponential_light(0.8 * r)) / (
        math.pi * (1.25**2 - 0.8**2) * r**2
    )
    expected = annulus / (exponential_light(r) / (math.pi * r**2))
    np.testing.assert_allclose(petrosian_eta(curve, r), expected, rtol=1e-3)


def test_petrosian_radius_of_exponential():
    """R_p where the closed-form eta = 0.2 (for h = 4: 14.18 px = 3.55 h); root finder tolerance
    1e-4 px plus interpolation: rtol 1e-3."""
    curve = analytic_curve(exponential_light)

    def eta(r):
        ann = (exponential_light(1.25 * r) - exponential_light(0.8 * r)) / (
            math.pi * (1.25**2 - 0.8**2) * r**2
        )
        return ann / (exponential_light(r) / (math.pi * r**2)) - 0.2

    assert petrosian_radius(curve) == pytest.approx(brentq(eta, 1.0, 50.0), rel=1e-3)


def test_petrosian_radius_nan_when_profile_larger_than_stamp():
    """A nearly flat profile (exponential with scale length 200 px) on a 41 px stamp: eta stays
    ~0.9 out to the largest radius the stamp supports, so there is no R_p."""
    yy, xx = np.indices((41, 41), dtype=float)
    image = np.exp(-np.hypot(xx - 20.2, yy - 19.9) / 200.0)
    curve = growth_curve(image, x0=20.2, y0=19.9, q=1.0, pa=0.0)
    assert petrosian_eta(curve, 0.8 * curve.r_max / 1.25) > 0.5
    assert math.isnan(petrosian_radius(curve))


def test_petrosian_radius_nan_when_curve_too_short():
    curve = analytic_curve(exponential_light, r_max=0.5)
    assert math.isnan(petrosian_radius(curve))


def test_rough_sky_is_astropy_median_and_mad_std():
    from astropy.stats import mad_std

    from casnet.morphology.sky import rough_sky

    rng = np.random.default_rng(11)
    image = rng.normal(3.0, 2.0, size=(45, 50)) + rng.standard_cauchy((45, 50)) * 0.1
    mask = np.zeros(image.shape, dtype=bool)
    mask[10:20, 5:30] = True
    sky = rough_sky(image, mask=mask)
    values = image[~mask]
    assert sky.n_pixels == values.size
    np.testing.assert_allclose(sky.mean, np.median(values), rtol=1e-14)
    np.testing.assert_allclose(sky.sigma, mad_std(values), rtol=1e-14)
