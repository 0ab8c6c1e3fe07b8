"""Where an output may be written: the one check every writer makes before it touches anything.

Issue 28 found four ways a command destroyed what a user already had, each with exit status 0:
``casnet data simulate --out mydata`` replaced a folder of the user's own notes and FITS with a
store, ``casnet data ingest --input cutouts --out cutouts`` deleted the FITS it read,
``casnet predict in --out in/stamp_00000.fits`` replaced an input stamp with the catalogue, and
``casnet data select --in S --out S`` rewrote its input store while reading it. Every writer of a
store (:class:`casnet.data.io.store.StoreWriter`) and of a table (:mod:`casnet.data.io.catalog`,
the measure stage's Parquet) now calls :func:`check_output` before any work, so those are refused
with one line and nothing is touched:

- a store is written only where nothing is, where an empty folder is, or over a casnet store
  (a folder holding ``store.json``, or ``catalog.parquet`` and ``images.zarr``);
- a table (a file) is never written over a folder;
- an output is never an input, inside an input, or a folder holding an input.

It also removes what a killed run left beside an output (:func:`remove_stale_temporaries`): the
uniquely named ``.NAME.<random>.tmp`` files the atomic writers rename into place.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from casnet.core.errors import CasnetInputError

__all__ = ["STORE_MARKERS", "check_output", "is_store", "remove_stale_temporaries"]

#: what makes a folder a casnet store: its metadata file (written by every StoreWriter), or the
#: catalogue and images of a store written before ``store.json`` existed
STORE_MARKERS = ("store.json", ("catalog.parquet", "images.zarr"))

_GLOB_CHARS = frozenset("*?[")


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a casnet store (a folder with :data:`STORE_MARKERS`)."""
    path = Path(path)
    if not path.is_dir():
        return False
    for marker in STORE_MARKERS:
        names = (marker,) if isinstance(marker, str) else marker
        if all((path / n).exists() for n in names):
            return True
    return False


def _resolved(path: str | Path) -> Path:
    """``path`` made absolute with links resolved (``strict=False``: it may not exist yet); a
    glob (``cutouts/*.fits``) stands for the folder before its first wildcard."""
    text = os.fspath(path)
    if not Path(text).exists() and any(c in _GLOB_CHARS for c in text):
        parts = Path(text).parts
        first = next(i for i, p in enumerate(parts) if any(c in _GLOB_CHARS for c in p))
        text = os.path.join(*parts[:first]) if first else "."
    return Path(text).expanduser().resolve()


def _within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_output(
    out: str | Path,
    *,
    kind: Literal["file", "store", "folder"],
    inputs: Iterable[str | Path | None] = (),
) -> Path:
    """Refuse an output that would destroy something: return ``out`` when it is safe to write.

    Parameters
    ----------
    out : str or Path
        The output: a table file (``kind="file"``) or a store folder (``kind="store"``).
    kind : {"file", "store", "folder"}
        What will be written there: a file, a store (which replaces what is there), or files
        into a folder (which keeps what else is there).
    inputs : iterable of str or Path
        What the run reads (files, folders, stores, globs; None entries are skipped).

    Raises
    ------
    CasnetInputError
        When ``out`` is, is inside or holds one of ``inputs``; when a file would replace a folder;
        when a store would replace a file or a non-empty folder that is not a casnet store. The
        message names the path and says what to do; nothing has been touched.
    """
    out = Path(out)
    target = _resolved(out)
    for item in inputs:
        if item is None:
            continue
        source = _resolved(item)
        if _within(target, source):
            how = "is" if target == source else "is inside"
            raise CasnetInputError(
                f"{out}: the output {how} the input {item}; writing it would destroy what is "
                "read: choose an output outside the inputs"
            )
        if _within(source, target):
            raise CasnetInputError(
                f"{out}: the output holds the input {item}; writing it would destroy what is "
                "read: choose an output outside the inputs"
            )
    if kind == "file":
        if out.is_dir():
            raise CasnetInputError(f"{out}: is a folder; the output is a file: give a file name")
        return out
    if kind == "folder":
        if out.exists() and not out.is_dir():
            raise CasnetInputError(f"{out}: exists and is not a folder; give a folder")
        return out
    if kind != "store":
        raise ValueError(f"kind must be 'file', 'store' or 'folder', got {kind!r}")
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise CasnetInputError(
                f"{out}: exists and is not a folder; a store is a folder: remove it or choose "
                "another output"
            )
        if not is_store(out) and any(out.iterdir()):
            raise CasnetInputError(
                f"{out}: exists and is not a casnet store; casnet replaces only its own stores "
                "(a folder with store.json): choose a new folder, or remove this one yourself"
            )
    return out


def remove_stale_temporaries(out: str | Path) -> list[Path]:
    """Remove ``.NAME.<random>.tmp`` files a killed run left beside ``out``.

    Call only while holding ``out``'s lock (:class:`casnet.core.locking.OutputLock`): every
    writer creates its temporary file after taking that lock, so any such file met then belongs
    to a run that is gone.

    Returns
    -------
    list of Path
        The files removed.
    """
    out = Path(out)
    if not out.parent.is_dir():
        return []
    pattern = f".{glob.escape(out.name)}.*.tmp"
    removed = []
    for stale in out.parent.glob(pattern):
        if stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed
