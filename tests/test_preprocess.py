"""crop_normalise: the one preprocessing of network inputs (60x60 crop about the centre, max 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from casnet.core.errors import CasnetInputError
from casnet.data.io.store import StoreWriter
from casnet.data.preprocess import CROP_SIZE, crop_normalise
from casnet.data.settings import SelectConfig, StoreConfig
from casnet.pipeline import select


def _arange_image(h: int, w: int, offset: float = 1.0) -> np.ndarray:
    # every pixel distinct and positive; values <= h*w + offset are exact in float32
    return (np.arange(h * w, dtype=np.float64).reshape(h, w) + offset).astype(np.float32)


def test_crop_size_is_the_papers_60_px():
    assert CROP_SIZE == 60


def test_single_stamp_gives_one_crop():
    crops, ok = crop_normalise(_arange_image(101, 101))
    assert crops.shape == (60, 60)
    assert crops.dtype == np.float32
    # one stamp in, one flag out (the flag comes as a length-1 array)
    assert ok is True  # one stamp: a plain bool


def test_stack_gives_one_crop_per_stamp():
    stack = np.stack([_arange_image(101, 101, offset=k) for k in range(1, 4)])
    crops, ok = crop_normalise(stack)
    assert crops.shape == (3, 60, 60)
    assert crops.dtype == np.float32
    assert ok.shape == (3,)
    assert ok.dtype == bool
    assert ok.all()


@pytest.mark.parametrize(
    ("h", "w", "size"),
    [(101, 101, 60), (100, 100, 60), (61, 61, 60), (60, 60, 60), (70, 91, 60), (17, 12, 8)],
)
def test_crop_starts_at_half_the_margin(h, w, size):
    img = _arange_image(h, w)
    crops, _ = crop_normalise(img[None], size=size)
    y0, x0 = (h - size) // 2, (w - size) // 2  # documented: the crop starts at (H - size) // 2
    window = img[y0 : y0 + size, x0 : x0 + size]
    # the arange image grows along rows and columns: the window's maximum is its last pixel
    expected = window / window[-1, -1]
    # same float32 division as the function: exact
    np.testing.assert_array_equal(crops[0], expected)


def test_101_px_stamp_keeps_pixels_20_to_79():
    img = np.zeros((101, 101), np.float32)
    img[20, 20] = 1.0  # first kept pixel
    img[79, 79] = 2.0  # last kept pixel
    img[19, :] = img[:, 19] = img[80, :] = img[:, 80] = 100.0  # just outside: must be cut away
    crop, _ = crop_normalise(img)
    assert crop[0, 0] == 0.5
    assert crop[-1, -1] == 1.0
    assert crop.max() == 1.0  # the 100s were not in the crop


def test_each_stamp_is_divided_by_its_own_maximum():
    rng = np.random.default_rng(1)
    stack = rng.normal(0.0, 1.0, (5, 80, 80)).astype(np.float32)
    stack[:, 40, 40] = np.array([3.0, 10.0, 0.5, 1e4, 7.0], np.float32)  # a positive peak each
    crops, ok = crop_normalise(stack)
    assert ok.all()
    # x / x is exactly 1 in IEEE arithmetic: the maximum is 1.0, not approximately 1
    np.testing.assert_array_equal(crops.max(axis=(1, 2)), np.ones(5, np.float32))
    window = stack[:, 10:70, 10:70].astype(np.float64)
    expected = window / window.max(axis=(1, 2), keepdims=True)
    # float32 division vs float64 reference: one float32 ulp of relative error at most
    np.testing.assert_allclose(crops, expected, rtol=2e-7, atol=1e-7)


def test_missing_pixels_become_zero_and_do_not_set_the_maximum():
    img = _arange_image(64, 64)
    img[2, 2] = np.nan  # a crop pixel (crop starts at 2)
    img[30, 30] = np.inf  # not finite either: missing, not the peak
    img[61, 61] = -np.inf
    crop, ok = crop_normalise(img)
    assert bool(np.asarray(ok).reshape(-1)[0])
    assert crop[0, 0] == 0.0
    assert crop[28, 28] == 0.0
    assert crop[59, 59] == 0.0
    assert np.isfinite(crop).all()
    # the peak among the finite pixels: stamp pixel (61, 60), next to the -inf = crop (59, 58)
    assert crop.max() == 1.0
    assert crop[59, 58] == 1.0


@pytest.mark.parametrize(
    "fill",
    [0.0, -1.0, np.nan],
    ids=["zeros", "negative", "all-nan"],
)
def test_stamp_without_positive_pixel_is_not_ok_and_all_zero(fill):
    stack = np.stack([_arange_image(70, 70), np.full((70, 70), fill, np.float32)])
    crops, ok = crop_normalise(stack)
    assert ok.tolist() == [True, False]
    assert np.all(crops[1] == 0.0)
    assert crops[0].max() == 1.0  # the good neighbour in the stack is unaffected


def test_positive_pixel_outside_the_crop_does_not_count():
    img = np.full((101, 101), -1.0, np.float32)
    img[0, 0] = 5.0  # positive, but cropped away
    crop, ok = crop_normalise(img)
    assert np.asarray(ok).reshape(-1).tolist() == [False]
    assert np.all(crop == 0.0)


@pytest.mark.parametrize(
    "shape",
    [(59, 101), (101, 59), (3, 59, 59), (10, 10)],
    ids=["short", "narrow", "stack-too-small", "tiny"],
)
def test_too_small_stamps_are_an_input_error(shape):
    with pytest.raises(CasnetInputError, match="smaller than"):
        crop_normalise(np.ones(shape, np.float32))


@pytest.mark.parametrize("shape", [(3600,), (2, 2, 60, 60), ()], ids=["1-D", "4-D", "0-D"])
def test_wrong_number_of_dimensions_is_an_input_error(shape):
    with pytest.raises(CasnetInputError, match="2-D or 3-D"):
        crop_normalise(np.ones(shape, np.float32))


def test_input_is_not_modified():
    img = _arange_image(80, 80)
    img[40, 40] = np.nan
    before = img.copy()
    crop_normalise(img)
    np.testing.assert_array_equal(img, before)


# -- the select stage uses this very function --------------------------------------------------


def _blob_store(path, n: int, *, chunk_size: int):
    """n stamps of 101x101 px: noise + a Gaussian blob; some NaN pixels; a truth array."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:101, :101]
    images, truths, rows = [], [], []
    for i in range(n):
        blob = (5.0 + i) * np.exp(-((yy - 50) ** 2 + (xx - 50) ** 2) / (2 * (3.0 + 0.3 * i) ** 2))
        image = (blob + rng.normal(0.0, 0.5, blob.shape)).astype(np.float32)
        image[30 + i, 40] = np.nan  # a missing pixel inside the crop
        images.append(image)
        truths.append(blob.astype(np.float32))
        rows.append({"galaxy_id": f"gal{i:02d}"})
    writer = StoreWriter(path, stamp_shape=(101, 101), arrays=("image", "truth"),
                         chunk_size=chunk_size, meta={"stage": "test"})  # fmt: skip
    with writer:
        for lo in range(0, n, chunk_size):
            hi = min(lo + chunk_size, n)
            writer.append(rows[lo:hi], {"image": np.stack(images[lo:hi]),
                                        "truth": np.stack(truths[lo:hi])})  # fmt: skip
    return np.stack(images), np.stack(truths), [r["galaxy_id"] for r in rows]


def test_select_stores_exactly_crop_normalise_of_the_source(tmp_path):
    n = 9
    images, truths, ids = _blob_store(tmp_path / "src", n, chunk_size=4)
    # galaxies 1, 4 and 7 fail the SNR cut; the others pass every cut
    meas = pd.DataFrame({
        "galaxy_id": ids,
        "flag": 0,
        "snr_p": [1.0 if i in (1, 4, 7) else 20.0 for i in range(n)],
        "r_petro": 10.0,
        "concentration": 3.0,
        "asymmetry": 0.1,
    })  # fmt: skip
    meas.to_parquet(tmp_path / "m.parquet", index=False)
    store, _ = select.run(SelectConfig(), StoreConfig(chunk_size=4), tmp_path / "src",
                          tmp_path / "m.parquet", tmp_path / "sel",
                          show_progress=False)  # fmt: skip
    kept = [i for i in range(n) if i not in (1, 4, 7)]
    assert store.catalog["galaxy_id"].tolist() == [ids[i] for i in kept]
    expected_image, ok = crop_normalise(images[kept])
    expected_truth, _ = crop_normalise(truths[kept])
    assert ok.all()
    np.testing.assert_array_equal(store.array("image")[:], expected_image)
    np.testing.assert_array_equal(store.array("truth")[:], expected_truth)
