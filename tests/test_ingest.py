"""Real FITS in: cutout files and mosaic + catalogue become Cutouts or Rejects; labels validated.

Every FITS file and catalogue is written into ``tmp_path`` by the test itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from casnet.core.errors import CasnetInputError
from casnet.core.flags import IngestFlag
from casnet.data import ingest
from casnet.data.ingest import (
    Cutout,
    Reject,
    iter_cutout_files,
    iter_mosaic,
    read_labels,
)
from casnet.data.settings import IngestConfig

SIZE = 21  # small stamps keep the tests fast
CFG = IngestConfig(stamp_size=SIZE)
CENTRE = SIZE // 2


def _tan_wcs(crpix: tuple[float, float] = (30.5, 40.5)) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.1, 2.2]
    wcs.wcs.crpix = list(crpix)
    wcs.wcs.cdelt = [-0.06 / 3600, 0.06 / 3600]
    return wcs


def _blob(shape: tuple[int, int], x0: float, y0: float, sigma: float = 2.0) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))


def _write(path, data, header=None, *, name=None):
    """A FITS file: ``data`` in the primary HDU, or in an extension ``name`` after an empty one."""
    if name is None:
        fits.PrimaryHDU(data, header=header).writeto(path, overwrite=True)
    else:
        hdus = [fits.PrimaryHDU(), fits.ImageHDU(data, header=header, name=name)]
        fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def _stamp(n: int = SIZE) -> np.ndarray:
    return _blob((n, n), (n - 1) / 2, (n - 1) / 2).astype(np.float32)


def _split(records):
    records = list(records)
    return (
        [r for r in records if isinstance(r, Cutout)],
        [r for r in records if isinstance(r, Reject)],
        records,
    )


# --------------------------------------------------------------------------------------------
# cutout files
# --------------------------------------------------------------------------------------------


def test_cutout_files_from_a_directory(tmp_path):
    _write(tmp_path / "g1.fits", _stamp())
    _write(tmp_path / "g2.fits.gz", _stamp().astype(np.float64))
    (tmp_path / "notes.txt").write_text("not a FITS file")
    cutouts, rejects, _ = _split(iter_cutout_files(tmp_path, config=CFG))
    assert rejects == []
    assert [c.galaxy_id for c in cutouts] == ["g1", "g2"]
    for c in cutouts:
        assert c.image.shape == (SIZE, SIZE)
        assert c.image.dtype == np.float32
        assert c.row["edge_fraction"] == 0.0
        assert c.row["ingest_flag"] == 0
        assert c.row["wcs"] == ""
        assert np.isnan(c.row["ra"]) and np.isnan(c.row["dec"])
    assert cutouts[1].row["source"].endswith("g2.fits.gz")


def test_cutout_wcs_is_kept_and_follows_the_crop(tmp_path):
    wcs = _tan_wcs()
    n = SIZE + 20
    _write(tmp_path / "g.fits", _stamp(n), header=wcs.to_header())
    (cutout,) = iter_cutout_files(tmp_path / "g.fits", config=CFG)
    stamp_wcs = WCS(cutout.row["wcs"])
    got = stamp_wcs.pixel_to_world(CENTRE, CENTRE)
    start = (n - SIZE) // 2
    expected = wcs.pixel_to_world(start + CENTRE, start + CENTRE)
    assert abs(got.ra.deg - expected.ra.deg) < 1e-6
    assert abs(got.dec.deg - expected.dec.deg) < 1e-6
    assert abs(cutout.row["ra"] - expected.ra.deg) < 1e-6
    assert abs(cutout.row["dec"] - expected.dec.deg) < 1e-6


def test_broken_wcs_keeps_the_pixels_and_says_why(tmp_path):
    header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "RA---TAN"})
    _write(tmp_path / "g.fits", _stamp(), header=header)
    (cutout,) = iter_cutout_files(tmp_path / "g.fits", config=CFG)
    assert isinstance(cutout, Cutout)
    assert cutout.row["wcs"] == ""
    assert "header WCS unusable" in cutout.row["ingest_flag_reasons"]


def test_larger_image_is_centre_cropped(tmp_path):
    ny, nx = 40, 50
    data = np.add.outer(np.arange(ny) * 1000.0, np.arange(nx)).astype(np.float32)
    _write(tmp_path / "big.fits", data)
    (cutout,) = iter_cutout_files(tmp_path / "big.fits", config=CFG)
    y0, x0 = (ny - SIZE) // 2, (nx - SIZE) // 2
    np.testing.assert_array_equal(cutout.image, data[y0 : y0 + SIZE, x0 : x0 + SIZE])
    assert (cutout.row["x"], cutout.row["y"]) == (x0 + CENTRE, y0 + CENTRE)
    assert "centre-cropped from 40x50" in cutout.row["ingest_flag_reasons"]


def _corrupted(path):
    path.write_bytes(b"SIMPLE  = garbage" + b"\0" * 200)


def _truncated(path):
    _write(path, _stamp(), name="SCI")
    data = path.read_bytes()
    # cut into the pixels, not just the zero padding of the last 2880-byte block
    path.write_bytes(data[: len(data) - 2000])


BAD_FILES = {
    "corrupted": (_corrupted, "not a readable FITS file"),
    "truncated": (_truncated, "not a readable FITS file"),
    "missing HDU": (lambda p: _write(p, _stamp()), "HDU 'SCI' not found"),
    "3-D": (lambda p: _write(p, np.ones((3, SIZE, SIZE)), name="SCI"), "expected 2-D"),
    "all-NaN": (lambda p: _write(p, np.full((SIZE, SIZE), np.nan), name="SCI"), "all-NaN"),
    "too small": (lambda p: _write(p, _stamp(SIZE - 2), name="SCI"), "wrong size"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_cutout_file_is_rejected_and_the_others_continue(tmp_path, case):
    make, message = BAD_FILES[case]
    _write(tmp_path / "a.fits", _stamp(), name="SCI")
    make(tmp_path / "b.fits")
    _write(tmp_path / "c.fits", _stamp(), name="SCI")
    cutouts, rejects, records = _split(
        iter_cutout_files(tmp_path, config=CFG.model_copy(update={"hdu": "SCI"}))
    )
    assert [c.galaxy_id for c in cutouts] == ["a", "c"]
    assert isinstance(records[1], Reject)
    (reject,) = rejects
    assert reject.galaxy_id == "b"
    assert reject.source.endswith("b.fits")
    assert message in reject.reason


def test_duplicate_galaxy_id_rejects_the_later_file(tmp_path):
    _write(tmp_path / "a.fits", _stamp())
    _write(tmp_path / "a.fits.gz", _stamp())
    cutouts, rejects, _ = _split(iter_cutout_files(tmp_path, config=CFG))
    assert [c.row["source"] for c in cutouts] == [str(tmp_path / "a.fits")]
    (reject,) = rejects
    assert reject.source == str(tmp_path / "a.fits.gz")
    assert "duplicate galaxy_id 'a'" in reject.reason


def test_glob_pattern_input(tmp_path):
    for name in ("x1.fits", "x2.fits", "y1.fits"):
        _write(tmp_path / name, _stamp())
    cutouts, rejects, _ = _split(iter_cutout_files(str(tmp_path / "x*.fits"), config=CFG))
    assert [c.galaxy_id for c in cutouts] == ["x1", "x2"]
    assert rejects == []


def test_list_input_mixes_files_patterns_and_bad_entries(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "d1.fits", _stamp())
    _write(tmp_path / "f.fits", _stamp())
    inputs = [tmp_path / "f.fits", str(tmp_path / "sub" / "*.fits"), tmp_path / "gone.fits"]
    inputs.append(str(tmp_path / "none*.fits"))
    cutouts, rejects, _ = _split(iter_cutout_files(inputs, config=CFG))
    assert [c.galaxy_id for c in cutouts] == ["f", "d1"]
    reasons = {r.source: r.reason for r in rejects}
    assert "no such file" in reasons[str(tmp_path / "gone.fits")]
    assert "matched no FITS files" in reasons[str(tmp_path / "none*.fits")]


@pytest.mark.parametrize("what", ["empty directory", "pattern", "empty list"])
def test_empty_cutout_input_raises_at_call_time(tmp_path, what):
    inputs = {"empty directory": tmp_path, "pattern": str(tmp_path / "*.fits"), "empty list": []}
    with pytest.raises(CasnetInputError, match="no input FITS files"):
        iter_cutout_files(inputs[what], config=CFG)


# --------------------------------------------------------------------------------------------
# mosaic + catalogue
# --------------------------------------------------------------------------------------------

MOSAIC_SHAPE = (120, 100)  # (ny, nx)
SOURCES = {"g007": (30.0, 40.0), "g008": (70.0, 85.0), "g009": (55.0, 20.0)}  # id: (x, y)


def _mosaic(path, *, wcs: WCS | None = None, extra=(), dtype=np.float32):
    data = np.zeros(MOSAIC_SHAPE)
    for x, y in [*SOURCES.values(), *extra]:
        data += 100 * _blob(MOSAIC_SHAPE, x, y)
    header = wcs.to_header() if wcs is not None else None
    _write(path, data.astype(dtype), header=header)
    return path


def _catalog(path, columns: dict):
    table = Table(columns)
    suffix = path.name.rsplit(".", 1)[-1]
    fmt = {"csv": "ascii.csv", "ecsv": "ascii.ecsv", "fits": "fits"}[suffix]
    table.write(path, format=fmt, overwrite=True)
    return path


def _xy_catalog(path, rows=SOURCES):
    ids = list(rows)
    return _catalog(
        path,
        {"galaxy_id": ids, "x": [rows[i][0] for i in ids], "y": [rows[i][1] for i in ids]},
    )


def _assert_centred(cutout):
    peak = np.unravel_index(np.nanargmax(cutout.image), cutout.image.shape)
    assert peak == (CENTRE, CENTRE)


@pytest.mark.parametrize("suffix", ["csv", "ecsv", "fits"])
def test_mosaic_radec_catalogue_through_the_wcs(tmp_path, suffix):
    wcs = _tan_wcs()
    mosaic = _mosaic(tmp_path / "mosaic.fits", wcs=wcs)
    sky = wcs.pixel_to_world([p[0] for p in SOURCES.values()], [p[1] for p in SOURCES.values()])
    cat = _catalog(
        tmp_path / f"cat.{suffix}",
        {"galaxy_id": list(SOURCES), "ra": sky.ra.deg, "dec": sky.dec.deg},
    )
    cutouts, rejects, _ = _split(iter_mosaic(mosaic, cat, config=CFG))
    assert rejects == []
    assert [c.galaxy_id for c in cutouts] == list(SOURCES)
    for c, (x, y), ra, dec in zip(cutouts, SOURCES.values(), sky.ra.deg, sky.dec.deg, strict=True):
        assert c.image.shape == (SIZE, SIZE) and c.image.dtype == np.float32
        _assert_centred(c)
        assert c.row["x"] == pytest.approx(x, abs=1e-6)
        assert c.row["y"] == pytest.approx(y, abs=1e-6)
        assert (c.row["ra"], c.row["dec"]) == (pytest.approx(ra), pytest.approx(dec))
        centre = WCS(c.row["wcs"]).pixel_to_world(CENTRE, CENTRE)
        assert abs(centre.ra.deg - ra) < 1e-6 and abs(centre.dec.deg - dec) < 1e-6
        assert c.row["source"] == str(mosaic)
        assert c.row["ingest_flag"] == 0


@pytest.mark.parametrize("suffix", ["csv", "ecsv", "fits"])
def test_mosaic_xy_catalogue_without_wcs(tmp_path, suffix):
    mosaic = _mosaic(tmp_path / "mosaic.fits")
    cutouts, rejects, _ = _split(
        iter_mosaic(mosaic, _xy_catalog(tmp_path / f"cat.{suffix}"), config=CFG)
    )
    assert rejects == []
    assert [c.galaxy_id for c in cutouts] == list(SOURCES)
    for c in cutouts:
        _assert_centred(c)
        assert np.isnan(c.row["ra"]) and c.row["wcs"] == ""


def test_mosaic_xy_catalogue_gets_sky_positions_from_the_wcs(tmp_path):
    wcs = _tan_wcs()
    mosaic = _mosaic(tmp_path / "mosaic.fits", wcs=wcs)
    cutouts, _, _ = _split(iter_mosaic(mosaic, _xy_catalog(tmp_path / "cat.csv"), config=CFG))
    x, y = SOURCES["g008"]
    expected = wcs.pixel_to_world(x, y)
    assert cutouts[1].row["ra"] == pytest.approx(expected.ra.deg, abs=1e-9)
    assert cutouts[1].row["dec"] == pytest.approx(expected.dec.deg, abs=1e-9)


def test_catalogue_ids_stay_text(tmp_path):
    mosaic = _mosaic(tmp_path / "mosaic.fits")
    cat = tmp_path / "cat.csv"
    cat.write_text("galaxy_id,x,y\n00012,30,40\n")
    (cutout,) = iter_mosaic(mosaic, cat, config=CFG)
    assert cutout.galaxy_id == "00012"


def test_missing_id_column_numbers_the_rows(tmp_path):
    mosaic = _mosaic(tmp_path / "mosaic.fits")
    cat = _catalog(tmp_path / "cat.csv", {"x": [30.0, 70.0], "y": [40.0, 85.0]})
    assert [c.galaxy_id for c in iter_mosaic(mosaic, cat, config=CFG)] == [
        "row000000",
        "row000001",
    ]


def test_edge_row_is_padded_and_flagged(tmp_path):
    # x = 5: the stamp starts at column 5 - 10 = -5, so 5 of its 21 columns are off the mosaic
    mosaic = _mosaic(tmp_path / "mosaic.fits", extra=[(5.0, 60.0)])
    cat = _xy_catalog(tmp_path / "cat.csv", {"edge": (5.0, 60.0)})
    (cutout,) = iter_mosaic(mosaic, cat, config=CFG.model_copy(update={"max_edge_fraction": 0.25}))
    assert isinstance(cutout, Cutout)
    assert cutout.row["ingest_flag"] == IngestFlag.PADDED
    assert cutout.row["edge_fraction"] == pytest.approx(5 / SIZE)
    assert (
        cutout.row["ingest_flag_reasons"] == "PADDED: padded at the mosaic edge (23.8% of pixels)"
    )
    assert np.isnan(cutout.image[:, :5]).all()
    assert np.isfinite(cutout.image[:, 5:]).all()
    _assert_centred(cutout)


def test_edge_row_beyond_max_edge_fraction_is_rejected(tmp_path):
    mosaic = _mosaic(tmp_path / "mosaic.fits")
    cat = _xy_catalog(tmp_path / "cat.csv", {"edge": (5.0, 60.0)})
    (reject,) = iter_mosaic(mosaic, cat, config=CFG.model_copy(update={"max_edge_fraction": 0.1}))
    assert isinstance(reject, Reject)
    assert reject.source == f"{cat}:row 0"
    assert reject.galaxy_id == "edge"
    assert "off the mosaic" in reject.reason and "23.8%" in reject.reason


def test_integer_mosaic_is_padded_with_nan(tmp_path):
    mosaic = _mosaic(tmp_path / "mosaic.fits", dtype=np.int32)
    cat = _xy_catalog(tmp_path / "cat.csv", {"edge": (50.0, 114.0)})
    (cutout,) = iter_mosaic(mosaic, cat, config=CFG.model_copy(update={"max_edge_fraction": 0.5}))
    assert cutout.image.dtype == np.float32
    assert np.isnan(cutout.image[-5:]).all() and np.isfinite(cutout.image[:-5]).all()


def test_scaled_mosaic_is_read(tmp_path):
    # BZERO/BSCALE data cannot be memory-mapped; it is read once instead
    hdu = fits.PrimaryHDU((100 * _blob(MOSAIC_SHAPE, 30, 40)).astype(np.float32))
    hdu.scale("int16", bscale=0.01)
    hdu.writeto(tmp_path / "mosaic.fits")
    cat = _xy_catalog(tmp_path / "cat.csv", {"g": (30.0, 40.0)})
    (cutout,) = iter_mosaic(tmp_path / "mosaic.fits", cat, config=CFG)
    _assert_centred(cutout)
    assert cutout.image.max() == pytest.approx(100, abs=0.01)


def test_positions_off_the_mosaic_are_rejected(tmp_path):
    mosaic = _mosaic(tmp_path / "mosaic.fits")
    rows = {"left": (-40.0, 50.0), "right": (500.0, 50.0), "just_out": (-3.0, 50.0)}
    records = list(iter_mosaic(mosaic, _xy_catalog(tmp_path / "cat.csv", rows), config=CFG))
    assert [r.galaxy_id for r in records] == list(rows)
    for r in records:
        assert isinstance(r, Reject) and "off the mosaic" in r.reason


def test_non_finite_positions_and_duplicate_ids_are_rejected(tmp_path):
    mosaic = _mosaic(tmp_path / "mosaic.fits")
    cat = tmp_path / "cat.csv"
    cat.write_text("galaxy_id,x,y\ng1,30,40\ng2,,40\ng3,abc,40\ng1,70,85\n,70,85\ng4,nan,3\n")
    records = list(iter_mosaic(mosaic, cat, config=CFG))
    assert isinstance(records[0], Cutout)
    reasons = [r.reason for r in records[1:]]
    assert "non-finite position (x=None" in reasons[0]
    assert "non-finite position (x='abc'" in reasons[1]
    assert "duplicate galaxy_id 'g1'" in reasons[2]
    assert "missing galaxy_id" in reasons[3]
    assert "non-finite position" in reasons[4]
    assert records[2].source == f"{cat}:row 2"


def test_radec_that_do_not_project_are_rejected(tmp_path):
    mosaic = _mosaic(tmp_path / "mosaic.fits", wcs=_tan_wcs())
    # the antipode of the tangent point has no TAN projection; |dec| > 90 is not a position
    cat = _catalog(
        tmp_path / "cat.csv",
        {"galaxy_id": ["far", "bad"], "ra": [330.1, 150.1], "dec": [-2.2, 95.0]},
    )
    records = list(iter_mosaic(mosaic, cat, config=CFG))
    assert all(isinstance(r, Reject) and "non-finite position" in r.reason for r in records)


def test_missing_coordinate_columns_raise(tmp_path):
    mosaic = _mosaic(tmp_path / "mosaic.fits", wcs=_tan_wcs())
    cat = _catalog(tmp_path / "cat.csv", {"galaxy_id": ["a"], "xpos": [1.0], "ypos": [2.0]})
    with pytest.raises(CasnetInputError, match=r"expected columns 'ra' and 'dec'.*'x' and 'y'"):
        iter_mosaic(mosaic, cat, config=CFG)


def test_radec_without_a_mosaic_wcs_raise(tmp_path):
    mosaic = _mosaic(tmp_path / "mosaic.fits")
    cat = _catalog(tmp_path / "cat.csv", {"galaxy_id": ["a"], "ra": [150.0], "dec": [2.0]})
    with pytest.raises(CasnetInputError, match="has no celestial WCS"):
        iter_mosaic(mosaic, cat, config=CFG)


def test_empty_catalogue_raises(tmp_path):
    mosaic = _mosaic(tmp_path / "mosaic.fits")
    cat = tmp_path / "cat.csv"
    cat.write_text("galaxy_id,x,y\n")
    with pytest.raises(CasnetInputError, match="no rows"):
        iter_mosaic(mosaic, cat, config=CFG)


def test_unknown_catalogue_format_raises(tmp_path):
    mosaic = _mosaic(tmp_path / "mosaic.fits")
    (tmp_path / "cat.txt").write_text("x y\n1 2\n")
    with pytest.raises(CasnetInputError, match="unknown catalogue format"):
        iter_mosaic(mosaic, tmp_path / "cat.txt", config=CFG)


def test_missing_mosaic_hdu_raises(tmp_path):
    mosaic = _mosaic(tmp_path / "mosaic.fits")
    cat = _xy_catalog(tmp_path / "cat.csv")
    with pytest.raises(CasnetInputError, match="HDU 'SCI' not found"):
        iter_mosaic(mosaic, cat, config=CFG.model_copy(update={"hdu": "SCI"}))


def test_truncated_mosaic_raises_at_call_time(tmp_path):
    mosaic = _mosaic(tmp_path / "mosaic.fits")
    data = mosaic.read_bytes()
    mosaic.write_bytes(data[: len(data) // 2])
    with pytest.raises(CasnetInputError, match="truncated"):
        iter_mosaic(mosaic, _xy_catalog(tmp_path / "cat.csv"), config=CFG)


def test_a_mosaic_too_large_for_memory_is_an_input_error(tmp_path, monkeypatch):
    """Issue 28: a tile-compressed mosaic is decompressed whole; out of memory it was a
    MemoryError traceback. (Simulated: the allocation fails when the pixels are touched.)"""
    mosaic = _mosaic(tmp_path / "mosaic.fits")
    kind = type(fits.open(mosaic)[0])

    def no_memory(self):
        raise MemoryError("cannot allocate 40 GiB")

    monkeypatch.setattr(kind, "data", property(no_memory))
    with pytest.raises(CasnetInputError, match="too large to read into memory"):
        iter_mosaic(mosaic, _xy_catalog(tmp_path / "cat.csv"), config=CFG)


def test_mosaic_is_opened_once_not_per_row(tmp_path, monkeypatch):
    mosaic = _mosaic(tmp_path / "mosaic.fits")
    rows = {f"g{i}": (30.0 + i % 40, 40.0 + i % 30) for i in range(50)}
    cat = _xy_catalog(tmp_path / "cat.csv", rows)
    opened = []
    real_open = fits.open

    def counting_open(*args, **kwargs):
        opened.append(kwargs.get("memmap"))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(ingest.fits, "open", counting_open)
    assert len(list(iter_mosaic(mosaic, cat, config=CFG))) == 50
    # one look at the headers when called, one memory-mapped open for all the rows
    assert opened == [True, True]


# --------------------------------------------------------------------------------------------
# external labels
# --------------------------------------------------------------------------------------------


def test_labels_are_join_ready(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("Galaxy_ID,C,a,C_err\n007,3.1,0.05,0.1\ng2,2.5,,0.2\n")
    labels = read_labels(path)
    assert list(labels.columns) == [
        "galaxy_id",
        "label_concentration",
        "label_asymmetry",
        "label_concentration_err",
    ]
    assert labels["galaxy_id"].tolist() == ["007", "g2"]
    assert labels["label_concentration"].tolist() == [3.1, 2.5]
    assert np.isnan(labels["label_asymmetry"][1])
    store = pd.DataFrame({"galaxy_id": ["g2", "007"], "n": [1, 2]})
    joined = store.merge(labels, on="galaxy_id", how="left", validate="one_to_one")
    assert joined["label_concentration"].tolist() == [2.5, 3.1]


def test_labels_from_a_fits_table(tmp_path):
    path = _catalog(
        tmp_path / "labels.fits",
        {
            "id": ["a", "b"],
            "concentration": [3.0, 4.0],
            "asymmetry": [0.1, 0.2],
            "asymmetry_err": [0.01, 0.02],
        },
    )
    labels = read_labels(path, id_column="id")
    assert labels["label_asymmetry_err"].tolist() == [0.01, 0.02]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,C,A\na,1,2\n", "no id column 'galaxy_id'"),
        ("galaxy_id,C,A\na,1,2\nb,1,2\na,3,4\nb,1,1\nc,1,1\n", "duplicate ids.*'a', 'b'"),
        ("galaxy_id,C,A\na,1,2\nb,high,2\n", "'C' must hold finite numbers; found 'high'"),
        ("galaxy_id,C\na,1\n", "missing label column.*label_asymmetry: one of asymmetry, a"),
        ("galaxy_id,C,concentration,A\na,1,1,2\n", "C, concentration all name"),
        ("galaxy_id,C,A\n,1,2\n", "empty 'galaxy_id'"),
        ("galaxy_id,C,A\n", "no rows"),
    ],
)
def test_label_validation_errors(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(CasnetInputError, match=message):
        read_labels(path)
