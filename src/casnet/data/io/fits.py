"""FITS stamps in and out (the I/O edge of the measurement)."""

from __future__ import annotations

import errno
import os
import re
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from casnet.core.errors import CasnetInputError

__all__ = [
    "FITS_SUFFIXES",
    "expand_paths",
    "path_bytes",
    "path_text",
    "read_image",
    "select_image_hdu",
    "write_image",
]

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz")


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


def select_image_hdu(hdul: fits.HDUList, hdu: int | str | None, path: str | Path):
    """The HDU ``hdu`` (index or EXTNAME) of an open file, or its first image HDU.

    Raises
    ------
    CasnetInputError
        When no HDU holds an image, or ``hdu`` does not exist or holds no image.
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
    return h


def read_image(path: str | Path, hdu: int | str | None = None) -> tuple[np.ndarray, fits.Header]:
    """Read a 2-D image from a FITS file.

    Parameters
    ----------
    path : str or Path
    hdu : int or str, optional
        HDU index or EXTNAME; default: the first HDU holding an image of 2 or more axes.

    Returns
    -------
    (image, header)
        ``image`` as float64 (length-1 axes squeezed).

    Raises
    ------
    CasnetInputError
        Naming the file and the problem (missing, not FITS, no image data, not 2-D, ...).
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
                h = select_image_hdu(hdul, hdu, path)
                if h.data is None:
                    raise CasnetInputError(f"{path}: HDU {hdu!r} holds no image data")
                data = np.asarray(h.data, dtype=np.float64)
                header = h.header.copy()
    except CasnetInputError:
        raise
    except (OSError, ValueError, TypeError, EOFError) as exc:
        raise CasnetInputError(f"{path}: not a readable FITS file ({exc})") from None
    data = np.squeeze(data)
    if data.ndim != 2:
        raise CasnetInputError(f"{path}: image has shape {data.shape}, expected 2-D")
    return data, header


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
