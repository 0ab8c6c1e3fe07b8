"""FITS headers are checked before pixels are read (issue 28), and the pixel scale they state.

A "FITS bomb" is a small file whose header declares a huge image: reading it asks numpy for tens of
GiB. It must be refused from its header alone, as one bad input among good ones.
"""

from __future__ import annotations

import gzip
import json
import math
import tracemalloc

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from casnet.cli import app
from casnet.core.errors import CasnetInputError
from casnet.core.flags import Flag
from casnet.data.io.fits import (
    MAX_PIXELS,
    check_declared_size,
    pixel_scale,
    pixel_scales,
    read_image,
    write_image,
)

BOMB_SHAPE = "100000x100000 float32"


def _header(shape: tuple[int, ...], bitpix: int = -32) -> fits.Header:
    """A primary header declaring an image of ``shape`` (numpy order) with no data behind it."""
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = bitpix
    header["NAXIS"] = len(shape)
    for i, n in enumerate(reversed(shape), start=1):
        header[f"NAXIS{i}"] = n
    return header


def _bomb(path, shape=(100_000, 100_000), bitpix=-32):
    """The file of the issue: a header declaring ``shape`` and one block of zeros (5.7 KB)."""
    data = _header(shape, bitpix).tostring().encode("ascii") + b"\0" * 2880
    path.write_bytes(data)
    return path


def _set_card(raw: bytes, key: str, value: int) -> bytes:
    """``raw`` FITS bytes with the integer card ``key`` rewritten in place (same 80 bytes)."""
    start = raw.index(key.ljust(8).encode() + b"= ")
    card = f"{key:<8}= {value:>20}".ljust(80).encode()
    return raw[:start] + card + raw[start + 80 :]


def _compressed(path, image):
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(image)]).writeto(path, overwrite=True)
    return path


# --- the bomb -------------------------------------------------------------------------------


def test_bomb_is_refused_from_its_header_with_little_memory(tmp_path):
    path = _bomb(tmp_path / "bomb.fits")
    assert path.stat().st_size == 5760
    tracemalloc.start()
    try:
        with pytest.raises(CasnetInputError) as err:
            read_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(err.value)
    # the header check, not a MemoryError caught afterwards: nothing was allocated for pixels
    assert str(path) in message and BOMB_SHAPE in message and f"{MAX_PIXELS:,}" in message
    assert "memory" not in message
    # numpy registers its buffers with tracemalloc; 20 MB is far above what parsing one header
    # takes (< 1 MB) and far below even one 8192x8192 float32 plane (256 MiB)
    assert peak < 20e6


def test_gzipped_bomb_is_refused_by_the_pixel_limit(tmp_path):
    # a gzip stream's size on disk says nothing of its content: the pixel limit bounds it
    path = tmp_path / "bomb.fits.gz"
    path.write_bytes(gzip.compress(_bomb(tmp_path / "plain.fits").read_bytes()))
    with pytest.raises(CasnetInputError, match=BOMB_SHAPE):
        read_image(path)


def test_header_declaring_more_than_the_file_holds_is_truncated(tmp_path):
    # 4000x4000 float32 is under the pixel limit; 64 MB of data declared in a 5.7 KB file
    path = _bomb(tmp_path / "liar.fits", shape=(4000, 4000))
    with pytest.raises(CasnetInputError) as err:
        read_image(path)
    message = str(err.value)
    assert str(path) in message and "not a readable FITS file: truncated" in message
    assert "64,000,000 bytes" in message and "4000x4000 float32" in message


def test_bomb_in_an_extension_is_refused(tmp_path):
    path = tmp_path / "ext.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((8, 8)), name="SCI")]).writeto(path)
    path.write_bytes(_set_card(path.read_bytes(), "NAXIS1", 100_000))
    with pytest.raises(CasnetInputError, match=r"HDU 'SCI'.*8x100000 float64"):
        read_image(path, "SCI")


def test_memory_error_becomes_an_input_error(tmp_path, monkeypatch):
    path = tmp_path / "s.fits"
    write_image(path, np.ones((16, 16)))

    def no_memory(self):
        raise MemoryError("Unable to allocate 37.3 GiB for an array")

    monkeypatch.setattr(fits.PrimaryHDU, "data", property(no_memory))
    with pytest.raises(CasnetInputError, match=r"too large to read into memory.*37\.3 GiB") as err:
        read_image(path)
    assert str(path) in str(err.value)


# --- tile-compressed images -----------------------------------------------------------------


def test_compressed_bomb_is_refused_before_decompression(tmp_path, monkeypatch):
    good = _compressed(tmp_path / "good.fits.fz", np.ones((64, 64), np.float32))
    raw = _set_card(_set_card(good.read_bytes(), "ZNAXIS1", 100_000), "ZNAXIS2", 100_000)
    path = tmp_path / "bomb.fits.fz"
    path.write_bytes(raw)

    def decompress(self):
        pytest.fail("the compressed image was decompressed")

    monkeypatch.setattr(fits.CompImageHDU, "data", property(decompress))
    with pytest.raises(CasnetInputError, match=rf"{path.name} \(HDU 1\).*{BOMB_SHAPE}"):
        read_image(path)


def test_truncated_compressed_file_is_refused(tmp_path):
    # noise does not compress, so the tiles fill many blocks and half the file cuts into them
    rng = np.random.default_rng(0)
    path = _compressed(tmp_path / "noise.fits.fz", rng.random((256, 256)).astype(np.float32))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CasnetInputError, match=r"truncated.*compressed data") as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_compressed_and_gzipped_stamps_still_read(tmp_path):
    image = np.arange(64 * 48, dtype=np.float32).reshape(64, 48)
    # lossless: integers survive the (default, quantising) compression of floats only if told
    comp = tmp_path / "s.fits.fz"
    hdu = fits.CompImageHDU(image.astype(np.int32), compression_type="RICE_1")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(comp)
    np.testing.assert_array_equal(read_image(comp)[0], image)
    plain = tmp_path / "s.fits"
    write_image(plain, image)
    gz = tmp_path / "s.fits.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    np.testing.assert_array_equal(read_image(gz)[0], image)


# --- normal stamps and the limit --------------------------------------------------------------


def test_normal_stamp_still_reads(tmp_path):
    image = np.arange(101 * 101, dtype=np.float32).reshape(101, 101)
    path = tmp_path / "s.fits"
    write_image(path, image)
    data, header = read_image(path)
    np.testing.assert_array_equal(data, image)
    assert header["NAXIS1"] == 101


def test_file_without_final_padding_still_reads(tmp_path):
    # the padding to a whole 2880-byte block is not data: a file lacking it holds every pixel
    image = np.ones((10, 10), np.float32)
    path = tmp_path / "s.fits"
    write_image(path, image)
    raw = path.read_bytes()
    path.write_bytes(raw[: 2880 + image.nbytes])
    np.testing.assert_array_equal(read_image(path)[0], image)


def test_max_pixels_is_a_keyword_of_read_image(tmp_path):
    path = tmp_path / "s.fits"
    write_image(path, np.ones((16, 16)))
    with pytest.raises(CasnetInputError, match=r"16x16 float32 image \(256 pixels\).*limit of 255"):
        read_image(path, max_pixels=255)
    assert read_image(path, max_pixels=256)[0].shape == (16, 16)
    assert read_image(path, max_pixels=None)[0].shape == (16, 16)


# --- check_declared_size, as the server will call it on FITS bytes ---------------------------


def test_declared_shape_is_in_numpy_order():
    assert check_declared_size(_header((20, 30)), source="x") == (20, 30)
    assert check_declared_size(_header((1, 20, 30)), source="x") == (1, 20, 30)
    assert check_declared_size(_header(()), source="x") == ()


def test_declared_bytes_are_compared_with_the_file_size():
    header = _header((20, 30), bitpix=-64)  # 4800 bytes
    assert check_declared_size(header, source="x", file_size=4800) == (20, 30)
    with pytest.raises(CasnetInputError, match=r"x: not a readable FITS file: truncated.*4,800"):
        check_declared_size(header, source="x", file_size=4799)


def test_compressed_table_header_declares_its_image_and_its_bytes(tmp_path):
    path = _compressed(tmp_path / "c.fits.fz", np.ones((64, 32), np.float32))
    with fits.open(path, disable_image_compression=True) as hdul:
        raw = hdul[1].header.copy()
    stored = raw["NAXIS1"] * raw["NAXIS2"] + raw["PCOUNT"]
    assert check_declared_size(raw, source="c", file_size=stored) == (64, 32)
    with pytest.raises(CasnetInputError, match="compressed table of a 64x32 float32 image"):
        check_declared_size(raw, source="c", file_size=stored - 1)
    raw["ZNAXIS1"] = raw["ZNAXIS2"] = 100_000
    with pytest.raises(CasnetInputError, match=BOMB_SHAPE):
        check_declared_size(raw, source="c")


@pytest.mark.parametrize(
    ("key", "value"),
    [("NAXIS2", -5), ("NAXIS2", "many"), ("NAXIS2", 2.5), ("BITPIX", 12), ("NAXIS", True)],
)
def test_invalid_sizes_are_refused(key, value):
    header = _header((20, 30))
    header[key] = value
    with pytest.raises(CasnetInputError, match=f"x: header keyword {key} = .*not a valid FITS"):
        check_declared_size(header, source="x")


def test_missing_axis_is_refused():
    header = _header((20, 30))
    del header["NAXIS2"]
    with pytest.raises(CasnetInputError, match="NAXIS2 missing"):
        check_declared_size(header, source="x")


def test_no_limits_when_asked():
    header = _header((100_000, 100_000))
    assert check_declared_size(header, source="x", max_pixels=None) == (100_000, 100_000)


# --- command line: one bomb among good stamps -------------------------------------------------


def test_measure_folder_with_a_bomb_keeps_every_row(tmp_path, clean_galaxy):
    write_image(tmp_path / "a.fits", clean_galaxy)
    _bomb(tmp_path / "b.fits")
    write_image(tmp_path / "c.fits", clean_galaxy)
    result = CliRunner().invoke(app, ["measure", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["source"].rsplit("/", 1)[-1]: r for r in json.loads(result.stdout)}
    assert sorted(rows) == ["a.fits", "b.fits", "c.fits"]
    assert rows["b.fits"]["flag"] == int(Flag.BAD_INPUT)
    assert BOMB_SHAPE in rows["b.fits"]["flag_reasons"]
    for name in ("a.fits", "c.fits"):
        assert not rows[name]["flag"] & Flag.BAD_INPUT
        assert math.isfinite(rows[name]["concentration"])


def test_ingest_rejects_a_bomb_and_keeps_the_others(tmp_path):
    from casnet.data.ingest import Cutout, Reject, iter_cutout_files
    from casnet.data.settings import IngestConfig

    stamp = np.ones((21, 21), np.float32)
    write_image(tmp_path / "a.fits", stamp)
    _bomb(tmp_path / "b.fits")
    write_image(tmp_path / "c.fits", stamp)
    records = list(iter_cutout_files(tmp_path, config=IngestConfig(stamp_size=21)))
    assert [type(r) for r in records] == [Cutout, Reject, Cutout]
    assert BOMB_SHAPE in records[1].reason


# --- pixel scale ----------------------------------------------------------------------------


def _celestial(**keys) -> fits.Header:
    header = fits.Header()
    header.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=150.1, CRVAL2=2.2)
    header.update(CRPIX1=30.5, CRPIX2=30.5, **keys)
    return header


def test_pixel_scale_from_a_rotated_cd_matrix():
    # 0.2"/px, East left, rotated by 30 degrees: the scale does not depend on the rotation
    s, t = 0.2 / 3600, math.radians(30)
    header = _celestial(CD1_1=-s * math.cos(t), CD1_2=s * math.sin(t),
                        CD2_1=s * math.sin(t), CD2_2=s * math.cos(t))  # fmt: skip
    # rtol: degrees to arcsec and back in float64 loses a few ulp, nothing more
    assert pixel_scale(header) == pytest.approx(0.2, rel=1e-9)


def test_pixel_scale_from_cdelt_and_pc_and_cunit():
    header = _celestial(CDELT1=-0.1 / 3600, CDELT2=0.1 / 3600, PC1_1=0.0, PC1_2=1.0,
                        PC2_1=-1.0, PC2_2=0.0)  # fmt: skip
    assert pixel_scale(header) == pytest.approx(0.1, rel=1e-9)
    in_arcsec = _celestial(CDELT1=-0.03, CDELT2=0.03, CUNIT1="arcsec", CUNIT2="arcsec")
    assert pixel_scale(in_arcsec) == pytest.approx(0.03, rel=1e-9)


def test_non_square_pixels_give_both_axes_and_their_geometric_mean():
    header = _celestial(CDELT1=-0.05 / 3600, CDELT2=0.1 / 3600)
    assert pixel_scales(header) == pytest.approx((0.05, 0.1), rel=1e-9)
    assert pixel_scale(header) == pytest.approx(math.sqrt(0.05 * 0.1), rel=1e-9)


def test_pixel_scale_from_keywords():
    header = fits.Header()
    header["PIXSCALE"] = (0.06, "arcsec/pixel")
    assert pixel_scale(header) == 0.06
    assert pixel_scale({"SECPIX": 0.396}) == 0.396
    assert pixel_scales({"PIXSCAL1": 0.1, "PIXSCAL2": 0.2}) == (0.1, 0.2)
    assert pixel_scales({"SECPIX1": 0.5}) == (0.5, 0.5)  # one member of a pair: square pixels


def test_wcs_wins_over_keywords_and_degenerate_wcs_falls_back():
    assert pixel_scale(_celestial(CDELT1=-0.1 / 3600, CDELT2=0.1 / 3600, PIXSCALE=0.06)) == (
        pytest.approx(0.1, rel=1e-9)
    )
    degenerate = _celestial(CD1_1=0.0, CD1_2=0.0, CD2_1=0.0, CD2_2=0.0, PIXSCALE=0.06)
    assert pixel_scale(degenerate) == 0.06


def test_pixel_scale_is_none_when_the_header_says_nothing():
    assert pixel_scale(fits.Header()) is None
    assert pixel_scale(_header((20, 30))) is None
    assert pixel_scale({"PIXSCALE": "unknown"}) is None
    assert pixel_scale({"PIXSCALE": -0.1}) is None
    # a photographic plate scale is per mm, not per pixel
    plate = fits.Header()
    plate["PLATESC"] = (67.2, "[arcsec/mm] plate scale")
    assert pixel_scale(plate) is None
    plate["PLATESC"] = (0.26, "[arcsec/pixel]")
    assert pixel_scale(plate) == 0.26


def test_simulated_stamps_read_the_networks_scale(tmp_path):
    from casnet.data.settings import SimulateConfig
    from casnet.data.simulate import write_stamps

    cfg = SimulateConfig()
    (path,) = write_stamps(cfg, 1, tmp_path, progress=False)
    assert pixel_scale(read_image(path)[1]) == cfg.pixel_scale == 0.06


def test_celestial_wcs_without_a_scale_is_not_one_degree():
    # wcslib assumes CDELT = 1 degree where the header gives none: not a pixel scale
    assert pixel_scale(_celestial()) is None
    assert pixel_scale(_celestial(SECPIX=0.396)) == 0.396


# astropy says so on opening; here it is the point
@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_fits_bytes_as_a_server_receives_them(tmp_path):
    import io

    from casnet.data.io.fits import select_image_hdu

    raw = _bomb(tmp_path / "bomb.fits", shape=(4000, 4000)).read_bytes()
    with fits.open(io.BytesIO(raw)) as hdul:
        # no file behind the bytes: select_image_hdu bounds the pixels only ...
        h = select_image_hdu(hdul, None, "upload", max_pixels=MAX_PIXELS)
        # ... and the caller, who holds the bytes, checks them against the header
        with pytest.raises(CasnetInputError, match=r"upload: not a readable FITS file: truncated"):
            check_declared_size(
                h.header, source="upload", file_size=len(raw) - h.fileinfo()["datLoc"]
            )
    with fits.open(io.BytesIO(_bomb(tmp_path / "big.fits").read_bytes())) as hdul:
        with pytest.raises(CasnetInputError, match=rf"upload \(HDU 0\).*{BOMB_SHAPE}"):
            select_image_hdu(hdul, None, "upload", max_pixels=MAX_PIXELS)
