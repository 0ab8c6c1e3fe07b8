"""Cross-check of C and A with statmorph (Rodriguez-Gomez et al. 2019) on simulated galaxies.

Both codes get the same data: the stamp minus casnet's sky mean, and exactly the segmentation
casnet's measure() used (recorded from inside it, so the same neighbours are deblended and
masked; re-segmenting with the final sky, as casnet.bench.speed does, does not always reproduce the
deblending: with an earlier simulator it cost 0.12 in the A correlation, 0.76 instead of 0.88).
statmorph gets a huge gain (no Poisson term: casnet's default has none either).

Known definitional differences, so the values differ systematically and the test is on their
correlation (the benchmark's target is Pearson r = 0.95):

- apertures: statmorph uses circles for C and A (``rpetro_circ``; total light inside
  1.5 rpetro_circ around its asymmetry centre); casnet ellipses (q, pa from second moments) around
  the asymmetry centre by default, circles with ``aperture_shape="circle"``;
- Petrosian eta: statmorph's annulus has a fixed width of 1 px (``annulus_width``); casnet's runs
  from 0.8 r to 1.25 r (Lotz et al. 2004) on a sub-pixel curve of growth;
- rotation: statmorph bilinear (``skimage.transform.rotate``, order 1); casnet cubic convolution;
- sky asymmetry: statmorph from a single sky box flipped by whole pixels (its noise is not
  smoothed by any interpolation, while the galaxy's is), so it over-subtracts at low SNR (A down to
  -0.3 at SNR_p ~ 1); casnet from the median over sky cells at the same sub-pixel shift as the
  galaxy. This is why galaxies below SNR_p = 5 are left out: there the comparison measures
  statmorph's background bias, not casnet (all unflagged galaxies: r_A ~ 0.5-0.9 depending on the
  simulated population);
- statmorph removes 10-sigma outlier pixels and masks symmetrically; casnet fills masked pixels
  azimuthally for the curve of growth.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

statmorph = pytest.importorskip("statmorph")

from casnet.bench.speed import statmorph_classes  # noqa: E402 (after the skip)
from casnet.morphology import measure  # noqa: E402
from casnet.morphology.settings import MorphologyConfig  # noqa: E402

#: galaxies compared at least (the brief: >= 50), and the stamps simulated at most to find them
N_GALAXIES = 55
MAX_TRIES = 400
#: SNR_p cut (see the module docstring)
MIN_SNR = 5.0
#: the bright part of the simulated range (conftest.BRIGHT), so that most stamps pass the SNR cut;
#: the population (disks, clumpy, mergers, spheroids, neighbours) is otherwise the project's
MAG_RANGE = (20.0, 24.0)


#: statmorph computing only C and A (casnet.bench.speed's): its constructor otherwise also fits
#: Sersic profiles and computes Gini/M20/MID, 4x the time, and none of it is compared
_CAOnly = statmorph_classes()[1]


class _CAOnlyRaw(_CAOnly):
    """statmorph's asymmetry without its background term (|I - I_180| / |I| alone: the same
    definition as casnet's ``asymmetry_raw``)."""

    _sky_asymmetry = -99.0  # statmorph's own "no sky box" value: it then skips the term


def _both(image: np.ndarray, config=None, statmorph_class=_CAOnly):
    """casnet's measurement of ``image`` (with ``config``) and statmorph's on the same
    sky-subtracted stamp with exactly the segmentation measure() used (recorded from inside it);
    statmorph None when casnet flags the stamp."""
    module = sys.modules["casnet.morphology.measurement"]
    original = module.segment
    seen = []

    def spy(*args, **kwargs):
        seg = original(*args, **kwargs)
        seen.append(seg)
        return seg

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "segment", spy)
        m = measure(image, config=config)
    if m.flag != 0:
        return m, None
    (seg,) = seen
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m, statmorph_class(image - m.sky_mean, seg.labels, seg.target, gain=1e10)


@pytest.fixture(scope="module")
def pairs(simulated):
    """(C_casnet, C_statmorph, A_casnet, A_statmorph) of the first N_GALAXIES stamps that both
    codes measure without any flag and with casnet's SNR_p >= MIN_SNR."""
    rows = []
    for index in range(MAX_TRIES):
        m, sm = _both(simulated(index, MAG_RANGE).image.astype(np.float64))
        if sm is None or not m.snr_p >= MIN_SNR or sm.flag != 0:
            continue
        rows.append((m.concentration, sm.concentration, m.asymmetry, sm.asymmetry))
        if len(rows) == N_GALAXIES:
            break
    assert len(rows) == N_GALAXIES, f"only {len(rows)} comparable galaxies in {MAX_TRIES} stamps"
    return np.array(rows)


@pytest.mark.slow
def test_concentration_correlates_with_statmorph(pairs):
    """Observed r_C = 0.954 on this selection (0.93-0.97 with other simulator versions and cuts;
    the benchmark target is 0.95). The scatter is mostly elongated disks, where statmorph's circles
    give a higher C than casnet's ellipses (on the noiseless truth casnet's C tracks the noisy one
    better: r = 0.91 against 0.83 for statmorph's). Assertion at 0.9: sampling 55 galaxies gives
    sigma_r ~ (1 - r^2) / sqrt(n) ~ 0.015, and a real regression (a wrong aperture, total radius
    or centre) drops r well below 0.9."""
    r = np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]
    assert r >= 0.9


@pytest.mark.slow
def test_asymmetry_correlates_with_statmorph(pairs):
    """Observed r_A = 0.935 on this selection (0.93-0.97 with other simulator versions; without the
    SNR cut 0.5-0.9, statmorph's background bias). Assertion at 0.9, as for C."""
    r = np.corrcoef(pairs[:, 2], pairs[:, 3])[0, 1]
    assert r >= 0.9


@pytest.mark.slow
def test_concentration_offset_from_statmorph_is_small(pairs):
    """The definitional differences move C by a few hundredths on average (observed median
    C_casnet - C_statmorph -0.024); more than 0.15 would mean a different scale (e.g. a lost
    factor 5 in the definition or a different total-light radius)."""
    assert abs(np.median(pairs[:, 0] - pairs[:, 1])) < 0.15


@pytest.mark.slow
def test_asymmetry_offset_from_statmorph_is_small(pairs):
    """statmorph's unsmoothed sky term makes its A lower at modest SNR (observed median
    A_casnet - A_statmorph +0.016 above SNR_p = 5); more than 0.06 would mean the two disagree
    on what is subtracted."""
    assert abs(np.median(pairs[:, 2] - pairs[:, 3])) < 0.06


#: the issue's cut: statmorph's own S/N per pixel
MIN_SN_PER_PIXEL = 2.5


@pytest.fixture(scope="module")
def clumpy_and_mergers(simulated):
    """(C, C_statmorph, C_true, A, A_statmorph, A_true) of the clumpy galaxies and mergers among
    the first 250 bright stamps that both codes measure without flags, with statmorph's S/N per
    pixel >= 2.5 (~26 galaxies). The truth is casnet's idealised truth (noiseless target, known
    centre)."""
    from casnet.morphology.measurement import measure_truth

    rows = []
    for index in range(250):
        gal = simulated(index, MAG_RANGE)
        if gal.params["kind"] not in ("clumpy", "merger"):
            continue
        image = gal.image.astype(np.float64)
        m, sm = _both(image)
        if sm is None or sm.flag != 0 or not sm.sn_per_pixel >= MIN_SN_PER_PIXEL:
            continue
        ny, nx = image.shape
        centre = ((nx - 1) / 2 + gal.params["x_offset_px"],
                  (ny - 1) / 2 + gal.params["y_offset_px"])  # fmt: skip
        t = measure_truth(gal.truth, centre=centre, sky_sigma=gal.sky_sigma)
        rows.append((m.concentration, sm.concentration, t.concentration,
                     m.asymmetry, sm.asymmetry, t.asymmetry))  # fmt: skip
    assert len(rows) >= 20, f"only {len(rows)} clumpy/merger galaxies to compare"
    return np.array(rows)


@pytest.mark.slow
def test_clumpy_and_merging_galaxies_agree_with_statmorph(clumpy_and_mergers):
    """On clumpy galaxies and mergers (the set where masked knots gave r_A = 0.39), with each
    code's own definitions: observed r_C = 0.91, r_A = 0.90 (26 galaxies). What separates them is
    definitional (circles against casnet's ellipses on inclined disks) and statmorph's background
    term: the next two tests take each out. Centring the apertures on the centroid instead of the
    asymmetry centre gave r_C = 0.72."""
    r_c = np.corrcoef(clumpy_and_mergers[:, 0], clumpy_and_mergers[:, 1])[0, 1]
    r_a = np.corrcoef(clumpy_and_mergers[:, 3], clumpy_and_mergers[:, 4])[0, 1]
    assert r_c >= 0.85
    assert r_a >= 0.85


@pytest.fixture(scope="module")
def clumpy_and_mergers_like_statmorph(simulated):
    """(C, C_statmorph, A_raw, A_raw_statmorph) of the same selection as ``clumpy_and_mergers``
    with casnet's apertures made statmorph's shape (``aperture_shape="circle"``) and both codes'
    asymmetry before the background term (~25 galaxies)."""
    config = MorphologyConfig(aperture_shape="circle")
    rows = []
    for index in range(250):
        gal = simulated(index, MAG_RANGE)
        if gal.params["kind"] not in ("clumpy", "merger"):
            continue
        m, sm = _both(gal.image.astype(np.float64), config, _CAOnlyRaw)
        if sm is None or sm.flag != 0 or not sm.sn_per_pixel >= MIN_SN_PER_PIXEL:
            continue
        size = gal.image.shape[0]
        true_x = (size - 1) / 2 + gal.params["x_offset_px"]
        true_y = (size - 1) / 2 + gal.params["y_offset_px"]
        rows.append((m.concentration, sm.concentration, m.asymmetry_raw, sm.asymmetry,
                     np.hypot(m.x_centre - sm.xc_asymmetry, m.y_centre - sm.yc_asymmetry),
                     np.hypot(m.x_centre - true_x, m.y_centre - true_y),
                     np.hypot(sm.xc_asymmetry - true_x, sm.yc_asymmetry - true_y)))  # fmt: skip
    assert len(rows) >= 20, f"only {len(rows)} clumpy/merger galaxies to compare"
    return np.array(rows)


@pytest.mark.slow
def test_with_statmorph_definitions_clumpy_and_merging_galaxies_agree(
    clumpy_and_mergers_like_statmorph,
):
    """The issue's agreement (r_C >= 0.97, r_A >= 0.95 where statmorph's S/N per pixel >= 2.5)
    once the definitions are the same: circular apertures (``aperture_shape="circle"``) and A
    before the background term. Observed on the issue-15 population (84 galaxies, resolved
    clumps, companions part of the target): r_A = 0.982; r_C = 0.984 where the two codes rotate
    about the same centre (within 2 px: 82 of 84), 0.90 over all 84. In the other two, clumpy
    galaxies whose A(centre) has several minima, the codes settle in different ones 4-6 px apart
    and centre their apertures there (galaxy 239: C 3.33 vs 1.84); casnet's centre is then the
    nearer to the galaxy's true centre, which is checked too.

    The background terms are not the same quantity and the truth decides between them (the next
    test): statmorph flips one sky box by whole pixels, so its noise is not smoothed as the
    bilinearly rotated galaxy's is, and it subtracts too much. That is why A after the term
    correlates less well."""
    d = clumpy_and_mergers_like_statmorph
    same = d[:, 4] <= 2.0
    assert same.mean() >= 0.9
    assert np.corrcoef(d[same, 0], d[same, 1])[0, 1] >= 0.97
    assert np.corrcoef(d[:, 2], d[:, 3])[0, 1] >= 0.95
    # where the centres differ, casnet's is the nearer to the truth
    assert np.all(d[~same, 5] <= d[~same, 6])


@pytest.mark.slow
def test_on_clumpy_and_merging_galaxies_casnet_is_closer_to_the_truth(clumpy_and_mergers):
    """Where the two codes disagree, the idealised truth decides: casnet's C and A correlate with
    it better than statmorph's (observed r_C 0.90 vs 0.82, r_A 0.77 vs 0.64) and its A is less
    biased (-0.10 vs -0.19)."""
    d = clumpy_and_mergers
    r = lambda i, j: np.corrcoef(d[:, i], d[:, j])[0, 1]  # noqa: E731
    assert r(0, 2) > r(1, 2)
    assert r(3, 5) > r(4, 5)
    assert abs(np.mean(d[:, 3] - d[:, 5])) < abs(np.mean(d[:, 4] - d[:, 5]))


@pytest.fixture(scope="module")
def real_spiral():
    """statmorph's own test galaxy (``statmorph/tests/data/slice.fits``, shipped with the
    package): a real face-on spiral, 162x162 px, which the old deblending cut into six pieces."""
    from pathlib import Path

    from astropy.io import fits

    path = Path(statmorph.__file__).parent / "tests" / "data" / "slice.fits"
    if not path.exists():
        pytest.skip("statmorph's slice.fits is not installed")
    with fits.open(path) as hdul:
        return hdul[0].data.astype(np.float64), hdul[1].data


def test_real_spiral_is_one_galaxy_and_its_c_matches_statmorph(real_spiral):
    """One segment, not its arms: casnet's target covers statmorph's own segmap of the galaxy
    (>= 90% of its brighter half), and C = 2.187 against statmorph's published 2.1910 (its test's
    reference value) — within 0.05. A is 0.11 here against statmorph's 0.004: statmorph flips its
    sky box by whole pixels while the galaxy is rotated with interpolation (which smooths the
    noise), so it subtracts too much; casnet's sky term alone gives 0.084 and the signal pixels'
    term (the arms) 0.114. Checked: A >= 0.05 (an over-subtraction like statmorph's fails it)."""
    from casnet.morphology.measurement import detect_target
    from casnet.morphology.sky import rough_sky

    image, segmap = real_spiral
    m = measure(image)
    seg = detect_target(image, rough_sky(image), MorphologyConfig())
    seg_target = seg.labels == seg.target
    bright = (segmap > 0) & (image > np.median(image[segmap > 0]))
    assert seg_target[bright].mean() >= 0.9
    assert m.concentration == pytest.approx(2.1910, abs=0.05)
    assert 0.05 <= m.asymmetry <= 0.2
