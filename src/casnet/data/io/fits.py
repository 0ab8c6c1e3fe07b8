"""FITS stamps in and out (the I/O edge of the measurement)."""

from __future__ import annotations

import errno
import math
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from casnet.core.errors import CasnetInputError

__all__ = [
    "FITS_SUFFIXES",
    "MAX_PIXELS",
    "check_declared_size",
    "expand_paths",
    "path_bytes",
    "path_text",
    "pixel_scale",
    "pixel_scales",
    "read_image",
    "select_image_hdu",
    "write_image",
]

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz")

#: The most pixels :func:`read_image` reads from one HDU: 2**26 = 8192 x 8192. A stamp is a few
#: hundred pixels on a side and a whole camera frame (HST ACS/WFC: two 4096 x 2048 chips; an SDSS
#: frame: 2048 x 1489) still fits; read whole and turned into float64 this is at most 512 MiB
#: (768 MiB at the peak for float32 data: the file's array and its float64 copy), so one file can
#: neither exhaust the memory of a laptop nor of a scoring worker. A header declaring more (a
#: 5.7 KB file declaring 100000 x 100000 float32 asked numpy for 37 GiB, issue 28) is refused
#: before any pixel is read. Larger images are mosaics: ``casnet ingest`` memory-maps those and
#: cuts stamps around a catalogue instead of reading them whole.
MAX_PIXELS = 8192 * 8192

#: FITS stores data in blocks of this many bytes (the standard, section 3.1)
_BLOCK = 2880

#: BITPIX values the FITS standard allows, with the numpy type each stands for
_BITPIX = {8: "uint8", 16: "int16", 32: "int32", 64: "int64", -32: "float32", -64: "float64"}

#: keywords giving the pixel scale in arcsec/pixel when a header has no celestial WCS, in the
#: order they are tried: single values, or (x, y) pairs whose second member may be missing
_SCALE_KEYWORDS = (("PIXSCALE",), ("PIXSCAL1", "PIXSCAL2"), ("SECPIX",), ("SECPIX1", "SECPIX2"),
                   ("PLATESC",))  # fmt: skip


def _is_fits_name(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in FITS_SUFFIXES)


def _listed(entry: Path) -> bool:
    """A FITS-named entry of a folder that is a file or a symbolic link, even one whose target
    is missing or loops (it gets its row and its reason, issue 19); never a folder."""
    return _is_fits_name(entry) and (entry.is_symlink() or entry.is_file()) and not entry.is_dir()


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files named directly, plus the FITS files (sorted) of each directory named.

    A path that does not exist is kept, so that it is reported as a bad input rather than
    silently dropped; so is a broken or looping symbolic link in a directory.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if _listed(f)))
        else:
            out.append(p)
    return out


def _image_hdu_index(hdul: fits.HDUList) -> int | None:
    for i, h in enumerate(hdul):
        if h.is_image and h.header.get("NAXIS", 0) >= 2:
            return i
    return None


def select_image_hdu(
    hdul: fits.HDUList,
    hdu: int | str | None,
    path: str | Path,
    *,
    max_pixels: int | None = None,
):
    """The HDU ``hdu`` (index or EXTNAME) of an open file, or its first image HDU.

    Only headers are read: the declared size of the HDU's data is checked (with
    :func:`check_declared_size`) before anyone touches ``.data``, so that a header declaring more
    data than the file holds (truncated, or lying) is refused here rather than by numpy's
    ``MemoryError`` or by a half-filled array. The file is ``hdul.filename()``; when that is None
    (opened from bytes) or the file is gzip/bzip2/zip-compressed (its size on disk says nothing
    about its content), only ``max_pixels`` bounds the data.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        Opened from ``path``.
    hdu : int, str or None
        Index or EXTNAME; None: the first HDU holding an image of 2 or more axes.
    path : str or Path
        Names the file in messages.
    max_pixels : int, optional
        Refuse an image of more pixels (for a tile-compressed HDU, of its decompressed image).
        None (the default): no limit, for memory-mapped mosaics; :func:`read_image` passes
        :data:`MAX_PIXELS`.

    Raises
    ------
    CasnetInputError
        When no HDU holds an image, ``hdu`` does not exist or holds no image, the file is shorter
        than the HDU's header declares ("not a readable FITS file: truncated"), or the image has
        more than ``max_pixels`` pixels.
    """
    index = _image_hdu_index(hdul) if hdu is None else hdu
    if index is None:
        raise CasnetInputError(f"{path}: no HDU holds image data")
    try:
        h = hdul[index]
    except (IndexError, KeyError):
        raise CasnetInputError(
            f"{path}: HDU {index!r} not found (file has {len(hdul)} HDUs)"
        ) from None
    if not h.is_image or h.header.get("NAXIS", 0) == 0:
        raise CasnetInputError(f"{path}: HDU {index!r} holds no image data")
    _check_hdu(h, f"{path} (HDU {index!r})", _plain_size(hdul.filename()), max_pixels)
    return h


def _plain_size(path: str | Path | None) -> int | None:
    """Size in bytes of ``path`` when it is an uncompressed FITS file; None otherwise.

    A FITS file begins with ``SIMPLE``; anything else that astropy opens is a gzip, bzip2, zip or
    lzma stream, whose size on disk bounds nothing (deflate alone expands 1000-fold).
    """
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            plain = f.read(6) == b"SIMPLE"
            return os.fstat(f.fileno()).st_size if plain else None
    except OSError:
        return None


def _check_hdu(h, source: str, size: int | None, max_pixels: int | None) -> None:
    """:func:`check_declared_size` for an HDU of an open file (``size``: the file's, or None)."""
    info = h.fileinfo()  # where the data begin, from headers only; None if not from a file
    available = None if size is None or info is None else size - info["datLoc"]
    if isinstance(h, fits.CompImageHDU):
        # astropy shows the image header (ZNAXISn as NAXISn): its size bounds the decompressed
        # pixels, not the bytes stored. Those are the binary table's, whose span (rounded up to
        # whole blocks, hence one block of slack) astropy took from the raw header.
        check_declared_size(h.header, source=source, max_pixels=max_pixels)
        if available is not None and available + _BLOCK <= info["datSpan"]:
            raise CasnetInputError(
                f"{source}: not a readable FITS file: truncated: its header declares "
                f"{info['datSpan']:,} bytes of compressed data (rounded up to whole "
                f"{_BLOCK}-byte blocks) but the file holds only {available:,} after the header"
            )
    else:
        check_declared_size(h.header, source=source, file_size=available, max_pixels=max_pixels)


def check_declared_size(
    header: Mapping,
    *,
    source: str,
    file_size: int | None = None,
    max_pixels: int | None = MAX_PIXELS,
) -> tuple[int, ...]:
    """The image shape a FITS header declares, refused when it cannot or must not be read.

    Only the header is looked at, so this is safe to call before reading any data (on a file, or
    on FITS bytes sent to a server).

    Parameters
    ----------
    header : astropy.io.fits.Header or mapping
        The header of one HDU as stored: an image (``NAXISn``, ``BITPIX``), or a tile-compressed
        image (a binary table with ``ZIMAGE = T``: the image is ``ZNAXISn``, ``ZBITPIX``; the
        bytes stored are the table's). The image header astropy shows for a compressed HDU
        (``CompImageHDU.header``) declares the image only: pass ``file_size=None`` with it.
    source : str
        Names the input in messages (a path, ``"upload 3"``).
    file_size : int, optional
        Bytes available for the HDU's data: the file's size less the offset where the data begin
        (``HDU.fileinfo()["datLoc"]``). The whole file's size is a looser bound that still catches
        a small file declaring a huge image. None: not checked (compressed streams such as gzip,
        whose size says nothing about the content).
    max_pixels : int, optional
        Most pixels allowed in the image, default :data:`MAX_PIXELS`; None: no limit.

    Returns
    -------
    tuple of int
        The image shape in numpy order, ``(NAXISn, ..., NAXIS2, NAXIS1)``; ``()`` for no data.

    Raises
    ------
    CasnetInputError
        Naming ``source``, the declared shape and the limit, when the header declares an invalid
        size (``NAXISn`` not a non-negative integer, an unknown ``BITPIX``), more bytes of data
        than ``file_size`` ("not a readable FITS file: truncated"), or more than ``max_pixels``
        pixels.

    Notes
    -----
    The bytes of data an HDU declares are, by the FITS standard (version 4.0, eq. 2),
    ``|BITPIX| / 8 * GCOUNT * (PCOUNT + NAXIS1 * ... * NAXISn)`` (the ``NAXIS1 = 0`` of random
    groups left out of the product), not counting the padding to a whole 2880-byte block, which a
    file may lack at its end.
    """
    compressed = bool(header.get("ZIMAGE", False))
    prefix = "Z" if compressed else ""
    shape = _declared_axes(header, prefix, source)[::-1]
    bitpix = _int_keyword(header, f"{prefix}BITPIX", source, allowed=_BITPIX)
    n_pixels = math.prod(shape) if shape else 0
    what = f"{'x'.join(map(str, shape)) or 'empty'} {_BITPIX[bitpix]} image"
    if max_pixels is not None and n_pixels > max_pixels:
        side = math.isqrt(max_pixels)
        limit = f"{side}x{side}" if side * side == max_pixels else "the limit"
        raise CasnetInputError(
            f"{source}: its header declares a {what} ({n_pixels:,} pixels), more than the "
            f"limit of {max_pixels:,} ({limit}) read whole; a larger image is a mosaic "
            "(casnet ingest --input MOSAIC --catalog POSITIONS cuts stamps from it)"
        )
    if file_size is not None:
        stored = _declared_bytes(header, source)
        if stored > file_size:
            table = f" (the compressed table of a {what})" if compressed else f" ({what})"
            raise CasnetInputError(
                f"{source}: not a readable FITS file: truncated: its header declares "
                f"{stored:,} bytes of data{table} but the file holds only "
                f"{max(file_size, 0):,} after the header"
            )
    return shape


def _declared_axes(header: Mapping, prefix: str, source: str) -> tuple[int, ...]:
    """``(NAXIS1, ..., NAXISn)`` (with ``prefix`` "Z": ``ZNAXISn``), FITS order."""
    # the standard allows at most 999 axes
    naxis = _int_keyword(header, f"{prefix}NAXIS", source, allowed=range(1000))
    return tuple(_int_keyword(header, f"{prefix}NAXIS{i}", source) for i in range(1, naxis + 1))


def _declared_bytes(header: Mapping, source: str) -> int:
    """Bytes of data the (stored) header declares, without the padding to whole blocks."""
    axes = _declared_axes(header, "", source)
    bitpix = _int_keyword(header, "BITPIX", source, allowed=_BITPIX)
    if axes and axes[0] == 0 and header.get("GROUPS", False):
        axes = axes[1:]  # random groups: NAXIS1 = 0 only says so
    if not axes:
        return 0
    pcount = _int_keyword(header, "PCOUNT", source, default=0)
    gcount = _int_keyword(header, "GCOUNT", source, default=1)
    return abs(bitpix) // 8 * gcount * (pcount + math.prod(axes))


def _int_keyword(
    header: Mapping,
    key: str,
    source: str,
    *,
    allowed=None,
    default: int | None = None,
) -> int:
    """``header[key]`` as a non-negative integer (one of ``allowed`` if given), else refused."""
    value = header.get(key, default)
    # bool is an int to Python, but T/F is no size
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    ok = ok and (value in allowed if allowed is not None else value >= 0)
    if not ok:
        shown = "missing" if value is None else f"= {value!r}"
        raise CasnetInputError(f"{source}: header keyword {key} {shown}: not a valid FITS size")
    return int(value)


def read_image(
    path: str | Path, hdu: int | str | None = None, *, max_pixels: int | None = MAX_PIXELS
) -> tuple[np.ndarray, fits.Header]:
    """Read a 2-D image from a FITS file.

    Parameters
    ----------
    path : str or Path
    hdu : int or str, optional
        HDU index or EXTNAME; default: the first HDU holding an image of 2 or more axes.
    max_pixels : int, optional
        Refuse images of more pixels, default :data:`MAX_PIXELS`; None: no limit.

    Returns
    -------
    (image, header)
        ``image`` as float64 (length-1 axes squeezed).

    Raises
    ------
    CasnetInputError
        Naming the file and the problem (missing, not FITS, no image data, not 2-D, truncated,
        declaring more than ``max_pixels`` pixels, too large for the memory, ...). The declared
        size is checked from the header before any pixel is read (:func:`check_declared_size`).
    """
    path = Path(path)
    if not path.exists():
        raise CasnetInputError(_missing(path))
    if path.is_dir():
        raise CasnetInputError(f"{path}: is a directory, not a FITS file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(path, memmap=False) as hdul:
                hdul.verify("silentfix")
                h = select_image_hdu(hdul, hdu, path, max_pixels=max_pixels)
                if h.data is None:
                    raise CasnetInputError(f"{path}: HDU {hdu!r} holds no image data")
                data = np.asarray(h.data, dtype=np.float64)
                header = h.header.copy()
    except CasnetInputError:
        raise
    except MemoryError as exc:
        # below max_pixels, but more than this machine has free: one file's problem, and every
        # caller turns CasnetInputError into a flagged row instead of losing the whole run
        raise CasnetInputError(f"{path}: too large to read into memory ({exc})") from None
    except (OSError, ValueError, TypeError, EOFError) as exc:
        raise CasnetInputError(f"{path}: not a readable FITS file ({exc})") from None
    data = np.squeeze(data)
    if data.ndim != 2:
        raise CasnetInputError(f"{path}: image has shape {data.shape}, expected 2-D")
    return data, header


def pixel_scales(header: Mapping) -> tuple[float, float] | None:
    """Pixel scale along each image axis, in arcsec/pixel, as the header states it.

    Parameters
    ----------
    header : astropy.io.fits.Header or mapping

    Returns
    -------
    (scale_x, scale_y) or None
        From the celestial WCS when the header has one (CD matrix, or CDELT with an optional PC
        matrix; ``astropy.wcs.utils.proj_plane_pixel_scales``, converted from ``CUNITn``, degrees
        by default): the size of a pixel on the sky along each pixel axis, whatever the rotation
        or flip. Otherwise from the first of ``PIXSCALE``, ``PIXSCAL1``/``PIXSCAL2``, ``SECPIX``,
        ``SECPIX1``/``SECPIX2``, ``PLATESC`` that holds a positive number (a pair whose second
        member is missing is taken as square pixels; a value whose comment says it is per mm, a
        plate scale in the photographic sense, is skipped). None when the header says nothing
        usable: no WCS (or a broken or degenerate one) and none of these keywords.
    """
    scales = _wcs_scales(header)
    if scales is not None:
        return scales
    for keys in _SCALE_KEYWORDS:
        values = [_scale_keyword(header, k) for k in keys]
        if values[0] is not None:
            return values[0], values[-1] if values[-1] is not None else values[0]
    return None


def pixel_scale(header: Mapping) -> float | None:
    """Pixel scale in arcsec/pixel, as the header states it; None when it does not.

    The geometric mean ``sqrt(scale_x * scale_y)`` of :func:`pixel_scales`: the side of a square
    pixel of the same area on the sky. Pixels are square in nearly every survey; where they are
    not (a cutout resampled along one axis, a long-slit or scanned image), a network trained on
    square pixels sees the galaxy stretched whatever this number is: ask :func:`pixel_scales` for
    both axes and compare them.

    Examples
    --------
    Stamps written by ``casnet stamps`` carry ``PIXSCALE`` = 0.06, the scale of the paper's
    networks; a ground-based 0.2"/px cutout with a CD matrix reads 0.2.
    """
    scales = pixel_scales(header)
    return None if scales is None else math.sqrt(scales[0] * scales[1])


def _wcs_scales(header: Mapping) -> tuple[float, float] | None:
    """(x, y) arcsec/pixel of the header's celestial WCS; None when it has no usable one."""
    import astropy.units as u
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales

    if not isinstance(header, fits.Header):
        header = fits.Header(dict(header))
    try:
        with warnings.catch_warnings():
            # FITSFixedWarning and friends: wcslib repairs old-style keywords on its own
            warnings.simplefilter("ignore", AstropyWarning)
            wcs = WCS(header)
            if not wcs.has_celestial:
                return None
            # .celestial drops spectral/Stokes axes of cubes stored as (1, ny, nx)
            celestial = wcs.celestial
            if celestial.naxis != 2 or not _states_scale(header, wcs):
                return None
            values = proj_plane_pixel_scales(celestial)
            units = [u.Unit(c or "deg") for c in celestial.wcs.cunit]
            scales = [float(v * unit.to(u.arcsec)) for v, unit in zip(values, units, strict=True)]
    except (ValueError, KeyError, TypeError, MemoryError, u.UnitsError):
        # a broken WCS says nothing reliable: fall back to the keywords
        return None
    if not all(math.isfinite(s) and s > 0 for s in scales):
        return None  # a zero or NaN CD matrix: degenerate, not a scale
    return scales[0], scales[1]


def _states_scale(header: fits.Header, wcs) -> bool:
    """Whether ``header`` gives its celestial axes a scale (a non-zero CDi_j or CDELTi).

    Where it gives none, or only zeros, wcslib assumes 1 degree per pixel: a number read from no
    keyword, which must not pass for the pixel scale.
    """
    axes = {wcs.wcs.lng + 1, wcs.wcs.lat + 1}  # FITS numbers of the celestial axes
    keys = [f"CDELT{i}" for i in axes] + [f"CD{i}_{j}" for i in axes for j in axes]
    for key in keys:
        value = header.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value != 0:
            return True
    return False


def _scale_keyword(header: Mapping, key: str) -> float | None:
    """Positive finite ``header[key]`` in arcsec/pixel, or None."""
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    comments = getattr(header, "comments", None)
    comment = str(comments[key]).lower() if comments is not None else ""
    if re.search(r"\bmm\b|/ *mm|per mm", comment):
        return None  # arcsec/mm: the plate scale of a photographic plate, not of the pixels
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def _missing(path: Path) -> str:
    """Why ``path`` cannot be opened: no such file, or a symbolic link that is broken or loops."""
    if not path.is_symlink():
        return f"{path}: no such file"
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{path}: symbolic link loop (-> {os.readlink(path)})"
    return f"{path}: broken symbolic link (-> {os.readlink(path)}, which does not exist)"


def write_image(
    path: str | Path,
    image: np.ndarray,
    *,
    header: fits.Header | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Write ``image`` to the primary HDU of ``path`` (overwriting), ``extra`` as named HDUs."""
    hdus = [fits.PrimaryHDU(np.asarray(image, dtype=np.float32), header=header)]
    for name, arr in (extra or {}).items():
        hdus.append(fits.ImageHDU(np.asarray(arr, dtype=np.float32), name=name))
    fits.HDUList(hdus).writeto(path, overwrite=True)


def path_text(path: str | Path) -> str:
    r"""A file name as text every catalogue format can hold (``source``, ``galaxy_id`` columns).

    The file system may hand over names that are not UTF-8 (``caf\xe9.fits`` written in
    Latin-1): Python keeps their bytes as lone surrogates, which Parquet, CSV and FITS refuse, and
    a whole run was lost on one such name. Here each byte that is not UTF-8 becomes the four
    characters ``\xNN``; everything else is unchanged. :func:`path_bytes` turns it back (exact
    unless the name itself holds a literal backslash, x and two hex digits).
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def path_bytes(text: str) -> bytes:
    r"""The file-system bytes of a :func:`path_text` (``\xNN`` back to the byte ``NN``)."""
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                  text.encode("utf-8"))  # fmt: skip
