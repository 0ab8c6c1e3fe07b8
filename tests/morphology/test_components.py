"""The deblending pre-test never skips a segment that photutils would split.

Reference: photutils' own ``deblend_sources``. The pre-test is allowed to say "maybe" when
photutils finds nothing to split, never "no" when it splits.
"""

from __future__ import annotations

import warnings

import numpy as np
from photutils.segmentation import deblend_sources, detect_sources
from scipy import ndimage

import casnet.morphology.segmentation as segmentation
from casnet.morphology._components import may_split
from casnet.morphology.measurement import detect_target
from casnet.morphology.settings import MorphologyConfig
from casnet.morphology.sky import rough_sky


def _blob(shape, y, x, sigma, amp):
    yy, xx = np.indices(shape)
    return amp * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))


def _splits(data, segm, label, npixels, nlevels, contrast) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = deblend_sources(
            data, segm, npixels, labels=[label], n_levels=nlevels, contrast=contrast,
            progress_bar=False,
        )  # fmt: skip
    return out.n_labels > segm.n_labels


def test_single_smooth_peak_cannot_split():
    data = _blob((40, 40), 20, 20, 4.0, 10.0)
    assert not may_split(data, data > 0.5, 10)


def test_two_separate_peaks_may_split_and_photutils_agrees():
    data = _blob((40, 60), 20, 18, 4.0, 10.0) + _blob((40, 60), 20, 40, 4.0, 8.0)
    segm = detect_sources(data, 0.2, 10)
    assert segm.n_labels == 1
    assert may_split(data, segm.data == 1, 10)
    assert _splits(data, segm, 1, 10, 32, 0.001)


def test_a_bump_smaller_than_npixels_cannot_split():
    data = _blob((40, 40), 20, 20, 5.0, 10.0)
    data[8, 20] += 3.0  # one-pixel local maximum on the outskirts
    assert may_split(data, data > 0.3, 1)  # one pixel is a component when npixels = 1
    assert not may_split(data, data > 0.3, 5)


def test_never_says_no_where_photutils_splits():
    """Random smoothed fields with 1-3 blobs, random thresholds, npixels, levels and contrast."""
    rng = np.random.default_rng(0)
    split = maybe = 0
    for _ in range(250):
        n = int(rng.integers(20, 60))
        data = ndimage.gaussian_filter(rng.normal(size=(n, n)), rng.uniform(0.8, 3.0))
        for _ in range(int(rng.integers(1, 4))):
            data += _blob(
                (n, n), rng.uniform(0, n), rng.uniform(0, n), rng.uniform(2, 8),
                rng.uniform(0.2, 2.0) * data.std(),
            )  # fmt: skip
        npixels = int(rng.integers(1, 15))
        segm = detect_sources(data, data.std() * rng.uniform(0.2, 1.5), npixels)
        if segm is None:
            continue
        label = int(rng.integers(1, segm.n_labels + 1))
        nlevels = int(rng.integers(4, 40))
        contrast = float(rng.choice([0.0, 0.001, 0.01]))
        splits = _splits(data, segm, label, npixels, nlevels, contrast)
        maybe_split = may_split(data, segm.data == label, npixels)
        assert maybe_split or not splits
        split += splits
        maybe += maybe_split
    # the sample exercises both outcomes, and the pre-test does skip work
    assert split >= 20
    assert maybe < 250


def _segmentations(stamps, cfg):
    return [detect_target(s, rough_sky(s), cfg) for s in stamps]


def test_segmentation_of_simulated_stamps_is_unchanged_by_the_pre_test(simulated, monkeypatch):
    """The targets' segments with the pre-test equal those with photutils run on every target."""
    stamps = [simulated(i, None).image.astype(np.float64) for i in range(40)]
    cfg = MorphologyConfig()
    fast = _segmentations(stamps, cfg)
    monkeypatch.setattr(segmentation, "may_split", lambda *a: True)
    full = _segmentations(stamps, cfg)
    assert sum(s.target > 0 for s in full) >= 30
    for a, b in zip(fast, full, strict=True):
        assert a.target == b.target
        assert a.ambiguous == b.ambiguous
        np.testing.assert_array_equal(a.labels > 0, b.labels > 0)
        np.testing.assert_array_equal(a.target_mask, b.target_mask)
