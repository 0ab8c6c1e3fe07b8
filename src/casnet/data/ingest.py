"""Real FITS data in: cutout files, or a mosaic plus a position catalogue, as stamp records.

Two input layouts are read (settings: ``params.yaml`` section ``ingest``,
:class:`casnet.data.settings.IngestConfig`):

* **cutout files** (:func:`iter_cutout_files`): one galaxy per FITS file, the galaxy at the centre;
  images larger than the stamp are centre-cropped.
* **mosaic + catalogue** (:func:`iter_mosaic`): one large image and a table of positions (RA/Dec
  with the mosaic's WCS, or 0-based pixel x/y); a stamp is cut around every row.

Both yield, in a deterministic order, either a :class:`Cutout` (a float32 stamp and its catalogue
row) or a :class:`Reject` (an input that cannot be used, with the reason). A bad galaxy never stops
the run; a bad *input as a whole* (nothing matched, an empty or unreadable catalogue, a catalogue
without usable coordinate columns, an unreadable mosaic) raises :class:`CasnetInputError` at call
time, before anything is yielded. This module does not write anything: the pipeline stage hands
the records to the stamp store.

:func:`read_labels` reads an optional external catalogue of reference C and A values, validated and
keyed by the same string ``galaxy_id``, ready to join with the store's catalogue.

Why one module of ~800 lines: both layouts share the WCS handling, the cutting and padding, the
galaxy ids and the reject rules, and the label catalogue shares the table reading; it is one
concept (real FITS in, stamp records out), and split it would pass private helpers between
modules.
"""

from __future__ import annotations

import csv
import glob
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import ConvertError, SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D, NoOverlapError
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, NoConvergence

from casnet.core.errors import CasnetInputError
from casnet.core.flags import IngestFlag
from casnet.core.quantities import ERR, SCHEMA
from casnet.data.io.fits import (
    FITS_SUFFIXES,
    expand_paths,
    path_text,
    read_image,
    select_image_hdu,
)
from casnet.data.settings import IngestConfig

__all__ = [
    "CATALOG_FORMATS",
    "LABEL_ALIASES",
    "Cutout",
    "Reject",
    "iter_cutout_files",
    "iter_mosaic",
    "read_labels",
]


#: catalogue file suffix (lower case) -> astropy ``Table.read`` format
CATALOG_FORMATS = {
    ".csv": "ascii.csv",
    ".ecsv": "ascii.ecsv",
    **{s: "fits" for s in FITS_SUFFIXES if not s.endswith(".fz")},
}

#: accepted (case-insensitive) column names of :func:`read_labels`, per output column
#: (each quantity of the schema: its name, its symbol and its label column; the error: with
#: ``_err``, or ``sigma_<symbol>``)
LABEL_ALIASES: dict[str, tuple[str, ...]] = {
    **{t.column("label"): (t.name, t.symbol.lower(), t.column("label")) for t in SCHEMA},
    **{t.column("label") + ERR: (t.name + ERR, t.symbol.lower() + ERR,
                                 f"sigma_{t.symbol.lower()}", t.column("label") + ERR)
       for t in SCHEMA},
}  # fmt: skip
_REQUIRED_LABELS = tuple(t.column("label") for t in SCHEMA)


# eq=False: the image is an array, and element-wise ``==`` has no single truth value.
@dataclass(frozen=True, eq=False)
class Cutout:
    """One usable stamp.

    Attributes
    ----------
    galaxy_id : str
        Unique key of the galaxy (file name without its FITS suffix, or the catalogue id).
    image : 2-D float32 ndarray
        ``(stamp_size, stamp_size)``; NaN where the stamp extends past the mosaic edge.
    row : dict
        Catalogue row for the store, with the keys

        ``source`` (str)
            The FITS file the pixels came from.
        ``hdu`` (str)
            The HDU read, as configured (index or EXTNAME, as text); ``''``: the first image HDU.
        ``x``, ``y`` (float)
            The stamp's centre in the source image (0-based pixels): the image centre of a cutout
            file, the catalogue position on a mosaic.
        ``ra``, ``dec`` (float)
            ICRS degrees of that centre; NaN when unknown (no celestial WCS, no RA/Dec columns).
        ``wcs`` (str)
            The stamp's own celestial WCS as a FITS header string (``astropy.wcs.WCS(row['wcs'])``
            reads it back); ``''`` when the source has none.
        ``edge_fraction`` (float)
            Fraction of the stamp's pixels that are padding (outside the mosaic).
        ``ingest_flag`` (int)
            0, or :attr:`casnet.core.flags.IngestFlag.PADDED`.
        ``ingest_flag_reasons`` (str)
            Human-readable note (why flagged, what was done); ``''`` when there is nothing to say.
    """

    galaxy_id: str
    image: np.ndarray
    row: dict


@dataclass(frozen=True)
class Reject:
    """An input that cannot be used.

    Attributes
    ----------
    source : str
        The file, glob pattern or directory, or ``'<catalogue>:row <i>'`` (``i`` 0-based, header
        excluded).
    galaxy_id : str or None
        The galaxy's id when known.
    reason : str
        What is wrong, in words.
    """

    source: str
    galaxy_id: str | None
    reason: str

    def __post_init__(self) -> None:
        # names the file system gives may not be UTF-8, and a reason may quote them: written as
        # path_text, or rejects.parquet could not hold them
        for name in ("source", "galaxy_id", "reason"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, path_text(value))


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _celestial_wcs(header: fits.Header) -> tuple[WCS | None, str]:
    """The 2-D celestial WCS of ``header`` (None if it has none) and a note when it is unusable."""
    try:
        with warnings.catch_warnings():
            # FITSFixedWarning and friends: wcslib repairs old-style keywords on its own
            warnings.simplefilter("ignore", AstropyWarning)
            wcs = WCS(header)
            if not wcs.has_celestial:
                return None, ""
            # .celestial drops degenerate spectral/Stokes axes of images stored as (1, ny, nx)
            wcs = wcs.celestial
            if wcs.naxis != 2:
                return None, ""
            # wcslib checks some keywords only when first used, and an unknown frame fails only
            # in the conversion to ICRS: try both now rather than in the middle of a catalogue
            wcs.pixel_to_world(0.0, 0.0).icrs  # noqa: B018
    except (ValueError, KeyError, TypeError, MemoryError, ConvertError) as exc:
        # a broken WCS does not make the pixels useless: keep them, say why the WCS is gone
        return None, "header WCS unusable (" + " ".join(str(exc).split()) + ")"
    return wcs, ""


def _wcs_string(wcs: WCS | None) -> str:
    # relax=True keeps SIP distortion keywords, which strict FITS WCS does not know
    return "" if wcs is None else wcs.to_header_string(relax=True)


def _cut(
    data: np.ndarray, x: float, y: float, size: int, wcs: WCS | None, *, mode: str
) -> tuple[np.ndarray, float, WCS | None]:
    """Stamp of ``data`` centred on (x, y): (float32 image, padded fraction, stamp WCS).

    Raises astropy's ``NoOverlapError`` when the stamp misses ``data`` entirely.
    """
    floating = data.dtype.kind == "f"
    # NaN cannot be stored in an integer array: pad integer data with 0 and NaN it after the cast
    cut = Cutout2D(
        data,
        (x, y),
        (size, size),
        wcs=wcs,
        mode=mode,
        fill_value=np.nan if floating else 0,
        copy=False,
    )
    # np.array copies: native-endian float32, detached from the (memory-mapped) source
    image = np.array(cut.data, dtype=np.float32)
    sy, sx = cut.slices_cutout
    inside = (sy.stop - sy.start) * (sx.stop - sx.start)
    if not floating and inside < size * size:
        pad = np.ones(image.shape, dtype=bool)
        pad[sy, sx] = False
        image[pad] = np.nan
    return image, 1.0 - inside / (size * size), cut.wcs


def _icrs_degrees(wcs: WCS | None, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ICRS (ra, dec) in degrees of 0-based pixel positions; NaN without a WCS."""
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    if wcs is None:
        nan = np.full(x.shape, np.nan)
        return nan, nan.copy()
    # through SkyCoord so that a galactic or FK5 WCS still yields ICRS ra/dec
    sky = wcs.pixel_to_world(x, y).icrs
    return (
        np.atleast_1d(np.asarray(sky.ra.deg, dtype=np.float64)),
        np.atleast_1d(np.asarray(sky.dec.deg, dtype=np.float64)),
    )


def _hdu_label(hdu: int | str | None) -> str:
    # a string for every row, so the store's catalogue column has a single type
    return "" if hdu is None else str(hdu)


# --------------------------------------------------------------------------------------------
# cutout files
# --------------------------------------------------------------------------------------------


def _galaxy_id_of(path: Path) -> str:
    """File name without its FITS suffix (the longest one that matches, e.g. ``.fits.gz``)."""
    name = path.name
    lower = name.lower()
    for suffix in sorted(FITS_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem or name


def _is_pattern(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _expand_inputs(inputs: str | Path | Sequence[str | Path]) -> tuple[list[Path], list[Reject]]:
    """Files to read, in a deterministic order, and Rejects for inputs that matched nothing."""
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    files: list[Path] = []
    empty: list[Reject] = []
    for item in items:
        text = str(item)
        # an existing path wins over pattern syntax: file names may contain '[' legitimately
        if _is_pattern(text) and not Path(text).exists():
            matched = sorted(glob.glob(text, recursive=True))
            found = expand_paths(matched)
            if not found:
                empty.append(Reject(text, None, "pattern matched no FITS files"))
        else:
            found = expand_paths([item])
            if not found:
                empty.append(Reject(text, None, "directory holds no FITS files"))
        files.extend(found)
    return files, empty


def iter_cutout_files(
    inputs: str | Path | Sequence[str | Path], *, config: IngestConfig
) -> Iterator[Cutout | Reject]:
    """Read one-galaxy FITS cutouts into stamps.

    Parameters
    ----------
    inputs : str, Path or sequence of them
        Each a FITS file, a directory (its FITS files, sorted), or a glob pattern such as
        ``'data/raw/*.fits'`` (``**`` recurses). A path that does not exist is reported as a
        :class:`Reject`, as is a pattern or directory that yields no FITS file while others do.
    config : IngestConfig
        ``stamp_size`` and ``hdu`` are used.

    Returns
    -------
    iterator of Cutout or Reject
        In input order. The galaxy id is the file name without its FITS suffix(es)
        (``ngc1300.fits.gz`` -> ``ngc1300``). An image larger than the stamp is cut around its
        centre (the WCS follows the cut): the stamp starts at pixel ``(n - stamp_size) // 2``, so an
        odd excess leaves the extra pixel on the high side.

        Rejected: unreadable, corrupted or truncated files, a missing HDU, non-2-D data (the reason
        is :func:`casnet.data.io.fits.read_image`'s message), images smaller than the stamp, all-NaN
        stamps, and a galaxy id already yielded by an earlier file.

    Raises
    ------
    CasnetInputError
        At call time, when the inputs name no file at all.
    """
    files, empty = _expand_inputs(inputs)
    if not files:
        shown = ", ".join(r.source for r in empty) or "(nothing given)"
        raise CasnetInputError(f"no input FITS files: nothing matched {shown}")
    # a separate generator so that the empty-input error above fires at call time, not at the
    # first next(): the CLI can then fail before opening a store
    return _cutout_records(files, empty, config)


def _cutout_records(
    files: list[Path], empty: list[Reject], config: IngestConfig
) -> Iterator[Cutout | Reject]:
    yield from empty
    size = config.stamp_size
    seen: dict[str, str] = {}
    for path in files:
        source = path_text(path)
        galaxy_id = path_text(_galaxy_id_of(path))
        if galaxy_id in seen:
            yield Reject(
                source,
                galaxy_id,
                f"duplicate galaxy_id {galaxy_id!r} (already read from {seen[galaxy_id]})",
            )
            continue
        try:
            data, header = read_image(path, config.hdu)
        except CasnetInputError as exc:
            yield Reject(source, galaxy_id, str(exc))
            continue
        ny, nx = data.shape
        if ny < size or nx < size:
            yield Reject(
                source,
                galaxy_id,
                f"wrong size: image is {ny}x{nx} px, smaller than the {size}x{size} stamp",
            )
            continue
        if not np.isfinite(data).any():
            yield Reject(source, galaxy_id, "all-NaN image: no finite pixel")
            continue
        wcs, note = _celestial_wcs(header)
        # centre of the stamp in the source image; Cutout2D starts the cut at ceil(c - size / 2),
        # which is exactly (n - size) // 2 for this c
        xc = (nx - size) // 2 + (size - 1) / 2
        yc = (ny - size) // 2 + (size - 1) / 2
        image, _, stamp_wcs = _cut(data, xc, yc, size, wcs, mode="strict")
        if not np.isfinite(image).any():
            yield Reject(source, galaxy_id, f"the central {size}x{size} stamp has no finite pixel")
            continue
        notes = [note] if note else []
        if (ny, nx) != (size, size):
            notes.append(f"centre-cropped from {ny}x{nx}")
        ra, dec = _icrs_degrees(wcs, xc, yc)
        seen[galaxy_id] = source
        yield Cutout(
            galaxy_id,
            image,
            {
                "source": source,
                "hdu": _hdu_label(config.hdu),
                "x": float(xc),
                "y": float(yc),
                "ra": float(ra[0]),
                "dec": float(dec[0]),
                "wcs": _wcs_string(stamp_wcs),
                "edge_fraction": 0.0,
                "ingest_flag": 0,
                "ingest_flag_reasons": "; ".join(notes),
            },
        )


# --------------------------------------------------------------------------------------------
# catalogues
# --------------------------------------------------------------------------------------------


def _catalog_format(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(CATALOG_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return CATALOG_FORMATS[suffix]
    raise CasnetInputError(
        f"{path}: unknown catalogue format; use one of {', '.join(sorted(CATALOG_FORMATS))}"
    )


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        for row in csv.reader(fh):
            if row and not row[0].lstrip().startswith("#"):
                return [c.strip() for c in row]
    return []


def _read_table(path: str | Path, *, text_columns: Sequence[str] = ()) -> Table:
    """Read a CSV, ECSV or FITS table; ``text_columns`` (case-insensitive) are kept as strings.

    Raises
    ------
    CasnetInputError
        Naming the file: missing, unknown suffix, unreadable, or no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise CasnetInputError(f"{path}: no such catalogue file")
    fmt = _catalog_format(path)
    kwargs: dict[str, Any] = {}
    try:
        if fmt == "ascii.csv":
            # ids such as '00012' must stay text: CSV has no types and would read them as 12
            wanted = {c.lower() for c in text_columns}
            kwargs["converters"] = {c: str for c in _csv_header(path) if c.lower() in wanted}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            table = Table.read(path, format=fmt, **kwargs)
    except CasnetInputError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, EOFError) as exc:
        raise CasnetInputError(f"{path}: cannot read the catalogue ({exc})") from None
    if len(table) == 0 or not table.colnames:
        raise CasnetInputError(f"{path}: the catalogue has no rows")
    return table


def _find_column(table: Table, name: str) -> str | None:
    """The column called ``name``: exact match first, else a unique case-insensitive match."""
    if name in table.colnames:
        return name
    matches = [c for c in table.colnames if c.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def _as_float(column: Any) -> np.ndarray:
    """Column as float64; masked, empty or non-numeric cells become NaN."""
    if getattr(column, "dtype", np.dtype(object)).kind in "biuf":
        values = np.ma.asarray(column).astype(np.float64)
        return np.ma.filled(values, np.nan)
    texts = _as_text(column)
    return pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").to_numpy(np.float64)


def _as_text(column: Any) -> list[str | None]:
    """Column as stripped strings; masked or empty cells become None."""
    mask = np.ma.getmaskarray(column)
    out: list[str | None] = []
    for value, masked in zip(np.asarray(column), mask, strict=True):
        if masked:
            out.append(None)
            continue
        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        text = text.strip()
        out.append(text or None)
    return out


# --------------------------------------------------------------------------------------------
# mosaic + catalogue
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mosaic:
    path: Path
    index: int | str
    shape: tuple[int, int]
    wcs: WCS | None
    wcs_note: str
    #: scaled (BZERO/BSCALE/BLANK) data: astropy cannot memory-map it, so it is read whole once
    scaled: bool


def _inspect_mosaic(path: str | Path, hdu: int | str | None) -> _Mosaic:
    """Check the mosaic without reading its pixels, and take its WCS."""
    path = Path(path)
    if not path.is_file():
        raise CasnetInputError(f"{path}: no such mosaic file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(path, memmap=True) as hdul:
                h = select_image_hdu(hdul, hdu, path)
                index = next(i for i, x in enumerate(hdul) if x is h) if hdu is None else hdu
                full_shape = h.shape
                shape = tuple(n for n in full_shape if n != 1)
                header = h.header.copy()
                try:
                    # maps the pixels without reading them: a truncated file fails here, at call
                    # time, rather than in the middle of the catalogue
                    h.data  # noqa: B018
                    scaled = False
                except ValueError:
                    scaled = True
                except TypeError:
                    raise CasnetInputError(
                        f"{path}: HDU {index!r} is truncated (its data run past the end of file)"
                    ) from None
    except CasnetInputError:
        raise
    except MemoryError as exc:  # a tile-compressed mosaic is decompressed whole (issue 28)
        raise CasnetInputError(f"{path}: too large to read into memory ({exc})") from None
    except (OSError, ValueError, TypeError, EOFError) as exc:
        raise CasnetInputError(f"{path}: not a readable FITS file ({exc})") from None
    if len(shape) != 2:
        raise CasnetInputError(f"{path}: mosaic has shape {full_shape}, expected 2-D")
    wcs, note = _celestial_wcs(header)
    return _Mosaic(path, index, (int(shape[0]), int(shape[1])), wcs, note, scaled)


def _world_to_pixel(wcs: WCS, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel positions of ICRS degrees; NaN for invalid or unprojectable positions."""
    x = np.full(ra.shape, np.nan)
    y = np.full(ra.shape, np.nan)
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0)
    if not ok.any():
        return x, y
    coords = SkyCoord(ra[ok] * u.deg, dec[ok] * u.deg, frame="icrs")
    try:
        px, py = wcs.world_to_pixel(coords)
    except NoConvergence as exc:
        # SIP inversion can fail far off the image; those rows are off the mosaic anyway
        px, py = np.array(exc.best_solution, dtype=np.float64).T
        bad = np.asarray(exc.divergent if exc.divergent is not None else [], dtype=int)
        px[bad] = np.nan
        py[bad] = np.nan
    x[ok] = px
    y[ok] = py
    return x, y


def iter_mosaic(
    mosaic: str | Path, catalog: str | Path, *, config: IngestConfig
) -> Iterator[Cutout | Reject]:
    """Cut a stamp from a mosaic around every catalogue position.

    Parameters
    ----------
    mosaic : str or Path
        FITS image; HDU ``config.hdu`` (default: the first image HDU). Memory-mapped and opened
        once for the whole catalogue (data scaled with BZERO/BSCALE/BLANK cannot be mapped and is
        read into memory once instead).
    catalog : str or Path
        Position table, format from the suffix: ``.csv`` (astropy ``ascii.csv``), ``.ecsv``, or a
        FITS table (``.fits``, ``.fit``, ``.fts``, optionally gzipped; the first table HDU).
    config : IngestConfig
        ``stamp_size``, ``hdu``, the column names and ``max_edge_fraction``.

    Returns
    -------
    iterator of Cutout or Reject
        One record per catalogue row, in catalogue order.

    Notes
    -----
    Columns are looked up by the configured name, exactly or else case-insensitively.

    * **Positions**: when both ``ra_column`` and ``dec_column`` exist and the mosaic has a
      celestial WCS, RA/Dec (ICRS degrees) are projected through that WCS; otherwise
      ``x_column``/``y_column`` are used as 0-based pixel positions (FITS CRPIX-style 1-based
      positions must be shifted by -1 first).
    * **Ids**: ``id_column``; when the catalogue has no such column, ids are ``row000000``,
      ``row000001``, ... (the 0-based row index). A row whose id is empty or was already used is
      rejected (the first one wins).
    * **Edges**: a stamp reaching past the mosaic edge is padded with NaN. If the padded fraction
      exceeds ``max_edge_fraction`` the row is rejected ("off the mosaic"); otherwise it is kept
      with ``ingest_flag = IngestFlag.PADDED``. A position outside the mosaic, or a non-finite one
      (empty cell, text, a pole-crossing projection), is rejected.

    Raises
    ------
    CasnetInputError
        At call time: the mosaic or catalogue cannot be read, the catalogue is empty, or it has
        neither coordinate pair usable (the message names the columns expected).
    """
    info = _inspect_mosaic(mosaic, config.hdu)
    table = _read_table(catalog, text_columns=(config.id_column,))
    where = str(catalog)

    ra_col = _find_column(table, config.ra_column)
    dec_col = _find_column(table, config.dec_column)
    x_col = _find_column(table, config.x_column)
    y_col = _find_column(table, config.y_column)
    has_sky = ra_col is not None and dec_col is not None
    has_pix = x_col is not None and y_col is not None

    if has_sky and info.wcs is not None:
        ra = _as_float(table[ra_col])
        dec = _as_float(table[dec_col])
        x, y = _world_to_pixel(info.wcs, ra, dec)
        raw = list(zip(_as_text(table[ra_col]), _as_text(table[dec_col]), strict=True))
        names = (ra_col, dec_col)
    elif has_pix:
        x = _as_float(table[x_col])
        y = _as_float(table[y_col])
        if has_sky:
            # no WCS to place them, but the catalogue's own sky positions are still worth keeping
            ra = _as_float(table[ra_col])
            dec = _as_float(table[dec_col])
        else:
            finite = np.isfinite(x) & np.isfinite(y)
            ra = np.full(len(table), np.nan)
            dec = np.full(len(table), np.nan)
            if info.wcs is not None and finite.any():
                ra[finite], dec[finite] = _icrs_degrees(info.wcs, x[finite], y[finite])
        raw = list(zip(_as_text(table[x_col]), _as_text(table[y_col]), strict=True))
        names = (x_col, y_col)
    else:
        why = (
            f" ({config.ra_column!r}/{config.dec_column!r} are there, but the mosaic "
            f"{info.path} has no celestial WCS{': ' + info.wcs_note if info.wcs_note else ''})"
            if has_sky
            else ""
        )
        raise CasnetInputError(
            f"{where}: no usable positions: expected columns {config.ra_column!r} and "
            f"{config.dec_column!r} (with a WCS in the mosaic) or {config.x_column!r} and "
            f"{config.y_column!r} (0-based pixels){why}; the catalogue has "
            f"{', '.join(table.colnames)}"
        )

    id_col = _find_column(table, config.id_column)
    if id_col is None:
        ids: list[str | None] = [f"row{i:06d}" for i in range(len(table))]
    else:
        ids = _as_text(table[id_col])
    return _mosaic_records(info, where, ids, x, y, ra, dec, raw, names, config)


def _open_mosaic_data(info: _Mosaic) -> tuple[fits.HDUList, np.ndarray]:
    """Open the mosaic once for all rows: memory-mapped, or read whole when scaled."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            hdul = fits.open(info.path, memmap=not info.scaled)
            try:
                data = hdul[info.index].data
            except BaseException:
                hdul.close()
                raise
    except MemoryError as exc:
        raise CasnetInputError(f"{info.path}: too large to read into memory ({exc})") from None
    except (OSError, ValueError, TypeError, EOFError) as exc:
        raise CasnetInputError(f"{info.path}: not a readable FITS file ({exc})") from None
    # degenerate leading axes, e.g. (1, ny, nx): a view, nothing is read
    return hdul, np.squeeze(data)


def _mosaic_records(
    info: _Mosaic,
    where: str,
    ids: list[str | None],
    x: np.ndarray,
    y: np.ndarray,
    ra: np.ndarray,
    dec: np.ndarray,
    raw: list[tuple[str | None, str | None]],
    names: tuple[str, str],
    config: IngestConfig,
) -> Iterator[Cutout | Reject]:
    size = config.stamp_size
    ny, nx = info.shape
    first_row: dict[str, int] = {}
    hdul, data = _open_mosaic_data(info)
    try:
        for i, galaxy_id in enumerate(ids):
            source = f"{where}:row {i}"
            if galaxy_id is None:
                yield Reject(source, None, "missing galaxy_id")
                continue
            if galaxy_id in first_row:
                yield Reject(
                    source,
                    galaxy_id,
                    f"duplicate galaxy_id {galaxy_id!r} (first at row {first_row[galaxy_id]})",
                )
                continue
            # catalogue ids must be unique whatever happens to the first row (unlike file names,
            # where a broken file should not block a good copy)
            first_row[galaxy_id] = i
            xi, yi = float(x[i]), float(y[i])
            if not (math.isfinite(xi) and math.isfinite(yi)):
                (a, b), (na, nb) = raw[i], names
                yield Reject(source, galaxy_id, f"non-finite position ({na}={a!r}, {nb}={b!r})")
                continue
            # pixel i covers [i - 0.5, i + 0.5): a centre outside that range is not on the mosaic
            if not (-0.5 <= xi < nx - 0.5 and -0.5 <= yi < ny - 0.5):
                yield Reject(
                    source,
                    galaxy_id,
                    f"off the mosaic: position x={xi:.1f}, y={yi:.1f} is outside the "
                    f"{ny}x{nx} image",
                )
                continue
            try:
                image, edge, stamp_wcs = _cut(data, xi, yi, size, info.wcs, mode="partial")
            except NoOverlapError:  # pragma: no cover - the range check above catches these
                yield Reject(source, galaxy_id, "off the mosaic: no overlap")
                continue
            if edge > config.max_edge_fraction:
                yield Reject(
                    source,
                    galaxy_id,
                    f"off the mosaic: {100 * edge:.1f}% of the stamp is outside the image "
                    f"(max_edge_fraction {config.max_edge_fraction})",
                )
                continue
            if not np.isfinite(image).any():
                yield Reject(source, galaxy_id, "all-NaN stamp: no finite pixel")
                continue
            flag, reason = 0, ""
            if edge > 0:
                flag = int(IngestFlag.PADDED)
                reason = f"PADDED: padded at the mosaic edge ({100 * edge:.1f}% of pixels)"
            yield Cutout(
                galaxy_id,
                image,
                {
                    "source": str(info.path),
                    "hdu": _hdu_label(config.hdu),
                    "x": xi,
                    "y": yi,
                    "ra": float(ra[i]),
                    "dec": float(dec[i]),
                    "wcs": _wcs_string(stamp_wcs),
                    "edge_fraction": float(edge),
                    "ingest_flag": flag,
                    "ingest_flag_reasons": reason,
                },
            )
    finally:
        # drop the memory-map view before closing its file
        del data
        hdul.close()


# --------------------------------------------------------------------------------------------
# external labels
# --------------------------------------------------------------------------------------------


def read_labels(path: str | Path, *, id_column: str = "galaxy_id") -> pd.DataFrame:
    """Read an external catalogue of reference concentration and asymmetry values.

    Parameters
    ----------
    path : str or Path
        CSV, ECSV or FITS table (format from the suffix, as for :func:`iter_mosaic`).
    id_column : str
        Column of the galaxy ids (matched case-insensitively); read as text, so ``00012`` stays
        ``'00012'`` and joins with the store's ``galaxy_id``.

    Returns
    -------
    pandas.DataFrame
        Columns ``galaxy_id`` (str), ``label_concentration``, ``label_asymmetry`` (float64) and,
        when present, ``label_concentration_err``, ``label_asymmetry_err``; one row per galaxy, in
        file order. Empty cells become NaN (unlabelled).

    Notes
    -----
    Accepted column names, case-insensitive (:data:`LABEL_ALIASES`):

    * concentration: ``concentration``, ``C``, ``label_concentration``
    * asymmetry: ``asymmetry``, ``A``, ``label_asymmetry``
    * errors: ``concentration_err``, ``C_err``, ``sigma_C``, ``label_concentration_err`` and the
      same for A.

    Raises
    ------
    CasnetInputError
        The file cannot be read or is empty; the id column or a C/A column is missing; two columns
        map to the same label; an id is empty or repeated (the first repeated ids are listed); a
        label is not a number or is infinite.
    """
    table = _read_table(path, text_columns=(id_column,))
    id_col = _find_column(table, id_column)
    if id_col is None:
        raise CasnetInputError(
            f"{path}: no id column {id_column!r}; the catalogue has {', '.join(table.colnames)}"
        )

    found: dict[str, str] = {}
    for out, aliases in LABEL_ALIASES.items():
        matches = [c for c in table.colnames if c.lower() in aliases]
        if len(matches) > 1:
            raise CasnetInputError(
                f"{path}: columns {', '.join(matches)} all name {out}; keep only one"
            )
        if matches:
            found[out] = matches[0]
    missing = [c for c in _REQUIRED_LABELS if c not in found]
    if missing:
        expected = "; ".join(f"{c}: one of {', '.join(LABEL_ALIASES[c])}" for c in missing)
        raise CasnetInputError(
            f"{path}: missing label column(s) ({expected}; case-insensitive); the catalogue has "
            f"{', '.join(table.colnames)}"
        )

    ids = _as_text(table[id_col])
    empty_rows = [i for i, v in enumerate(ids) if v is None]
    if empty_rows:
        raise CasnetInputError(
            f"{path}: empty {id_col!r} in row(s) {', '.join(map(str, empty_rows[:5]))}"
        )
    id_series = pd.Series(ids, dtype="str")
    dup = id_series[id_series.duplicated()].unique().tolist()
    if dup:
        more = f" and {len(dup) - 5} more" if len(dup) > 5 else ""
        raise CasnetInputError(
            f"{path}: duplicate ids in {id_col!r}: {', '.join(map(repr, dup[:5]))}{more}"
        )

    columns: dict[str, Any] = {"galaxy_id": id_series}
    for out in LABEL_ALIASES:
        if out not in found:
            continue
        name = found[out]
        column = table[name]
        values = _as_float(column)
        bad = [str(v) for v in values[np.isinf(values)]]
        if column.dtype.kind not in "biuf":
            # text column (CSV): NaN from an empty cell is "unlabelled", NaN from text is an error
            texts = _as_text(column)
            bad += [t for t, v in zip(texts, values, strict=True) if t is not None and np.isnan(v)]
        if bad:
            raise CasnetInputError(
                f"{path}: column {name!r} must hold finite numbers; found "
                f"{', '.join(map(repr, bad[:5]))}"
            )
        columns[out] = values
    return pd.DataFrame(columns)
