"""Reading FITS stamps: good files work, bad ones raise CasnetInputError naming file and problem."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from casnet.core.errors import CasnetInputError
from casnet.data.io.fits import expand_paths, read_image, write_image


def test_round_trip_with_extra_hdu(tmp_path):
    img = np.arange(400, dtype=np.float32).reshape(20, 20)
    path = tmp_path / "s.fits"
    write_image(path, img, extra={"TRUTH": img * 2})
    data, _ = read_image(path)
    np.testing.assert_array_equal(data, img)
    truth, _ = read_image(path, "TRUTH")
    np.testing.assert_array_equal(truth, img * 2)


def test_first_image_hdu_is_found_after_an_empty_primary(tmp_path):
    img = np.ones((16, 16))
    path = tmp_path / "ext.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(img, name="SCI")]).writeto(path)
    data, _ = read_image(path)
    assert data.shape == (16, 16)


def test_degenerate_axes_are_squeezed(tmp_path):
    path = tmp_path / "cube1.fits"
    fits.PrimaryHDU(np.ones((1, 16, 16))).writeto(path)
    assert read_image(path)[0].shape == (16, 16)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"SIMPLE  = garbage" + b"\0" * 100), "not a readable FITS"),
        (lambda p: fits.PrimaryHDU().writeto(p), "no HDU holds image data"),
        (
            lambda p: fits.HDUList(
                [
                    fits.PrimaryHDU(),
                    fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1])]),
                ]
            ).writeto(p),
            "no HDU holds image data",
        ),
        (lambda p: fits.PrimaryHDU(np.ones((3, 16, 16))).writeto(p), "expected 2-D"),
    ],
    ids=["corrupted", "empty", "table-only", "cube"],
)
def test_bad_files(tmp_path, make, message):
    path = tmp_path / "bad.fits"
    make(path)
    with pytest.raises(CasnetInputError, match=message) as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_truncated_file(tmp_path):
    path = tmp_path / "trunc.fits"
    fits.PrimaryHDU(np.ones((64, 64))).writeto(path)
    path.write_bytes(path.read_bytes()[:4000])
    with pytest.raises(CasnetInputError, match=str(path)):
        read_image(path)


def test_missing_file_and_missing_hdu(tmp_path):
    with pytest.raises(CasnetInputError, match="no such file"):
        read_image(tmp_path / "absent.fits")
    path = tmp_path / "one.fits"
    fits.PrimaryHDU(np.ones((16, 16))).writeto(path)
    with pytest.raises(CasnetInputError, match="HDU 3 not found"):
        read_image(path, 3)


def test_expand_paths_keeps_missing_and_lists_folders(tmp_path):
    (tmp_path / "b.fits").write_bytes(b"")
    (tmp_path / "a.fits.gz").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    out = expand_paths([tmp_path, tmp_path / "missing.fits"])
    assert [p.name for p in out] == ["a.fits.gz", "b.fits", "missing.fits"]
