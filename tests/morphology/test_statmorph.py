"""Cross-check of C and A with statmorph (Rodriguez-Gomez et al. 2019) on simulated galaxies.

Both codes get the same data: the stamp minus casnet's sky mean, and exactly the segmentation
casnet's measure() used (recorded from inside it, so the same neighbours are deblended and
masked; re-segmenting with the final sky, as casnet.benchmark does, does not always reproduce the
deblending: with an earlier simulator it cost 0.12 in the A correlation, 0.76 instead of 0.88).
statmorph gets a huge gain (no Poisson term: casnet's default has none either).

Known definitional differences, so the values differ systematically and the test is on their
correlation (the benchmark's target is Pearson r = 0.95):

- apertures: statmorph uses circles for C and A (``rpetro_circ``; total light inside
  1.5 rpetro_circ around its asymmetry centre); casnet ellipses (q, pa from second moments) around
  the centroid;
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

from casnet.morphology import measure  # noqa: E402 (after the skip)

#: galaxies compared at least (the brief: >= 50), and the stamps simulated at most to find them
N_GALAXIES = 55
MAX_TRIES = 400
#: SNR_p cut (see the module docstring)
MIN_SNR = 5.0
#: the bright part of the simulated range (conftest.BRIGHT), so that most stamps pass the SNR cut;
#: the population (disks, clumpy, mergers, spheroids, neighbours) is otherwise the project's
MAG_RANGE = (20.0, 24.0)


class _CAOnly(statmorph.SourceMorphology):
    """statmorph computing only C and A (as casnet.benchmark does): its constructor otherwise also
    fits Sersic profiles and computes Gini/M20/MID, 4x the time, and none of it is compared."""

    def _calculate_morphology(self) -> None:
        _ = self.concentration, self.asymmetry

    def _check_segmaps(self) -> None:  # needs the Gini/MID segmaps, not computed here
        pass


@pytest.fixture(scope="module")
def pairs(simulated):
    """(C_casnet, C_statmorph, A_casnet, A_statmorph) of the first N_GALAXIES stamps that both
    codes measure without any flag and with casnet's SNR_p >= MIN_SNR."""
    module = sys.modules["casnet.morphology.measure"]
    original = module.segment
    seen = []

    def spy(*args, **kwargs):
        seg = original(*args, **kwargs)
        seen.append(seg)
        return seg

    rows = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "segment", spy)
        for index in range(MAX_TRIES):
            image = simulated(index, MAG_RANGE).image.astype(np.float64)
            seen.clear()
            m = measure(image)
            if m.flag != 0 or not m.snr_p >= MIN_SNR:
                continue
            (seg,) = seen
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sm = _CAOnly(image - m.sky_mean, seg.labels, seg.target, gain=1e10)
            if sm.flag != 0:
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
