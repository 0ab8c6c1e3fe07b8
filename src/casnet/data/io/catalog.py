"""Catalogues out: the one writer of tables (``casnet measure``, ``casnet predict``).

:func:`write_catalog` writes a table in the format its suffix names (:data:`SUFFIXES`);
:func:`write_rows` renders measurement rows as a terminal table, JSON, CSV or FITS. A file is
written atomically (a uniquely named temporary file beside it, then renamed, under the output's
lock): a run that fails, or a second run writing the same file, never leaves it truncated or
mixed, a run that was killed leaves a temporary file the next run removes, and its folder must
exist (or the error says so before anything is written). An output is never a folder nor an input
(:func:`casnet.data.io.outputs.check_output`).

Provenance (issue 28: no output said which model made it) travels in the file: ``meta`` (e.g.
``casnet_version``, ``model``) becomes Parquet key-value metadata, ECSV ``meta`` and FITS header
keywords (``HIERARCH`` cards); CSV, JSON and the terminal table carry none.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from astropy.table import Table

from casnet.core.errors import CasnetInputError
from casnet.core.locking import OutputLock
from casnet.data.io import outputs

__all__ = ["FORMATS", "SUFFIXES", "check_output", "format_table", "write_catalog", "write_rows"]

FORMATS = ("table", "json", "csv", "fits")
#: catalogue file suffix -> astropy ``Table.write`` format (None: Parquet, through pandas)
SUFFIXES = {".parquet": None, ".csv": "ascii.csv", ".fits": "fits", ".ecsv": "ascii.ecsv"}
Format = Literal["table", "json", "csv", "fits"]

#: columns shown on the terminal, in order (the files carry every column)
_TERMINAL = (
    "source",
    "concentration",
    "concentration_err",
    "asymmetry",
    "asymmetry_err",
    "r_petro",
    "snr_p",
    "q",
    "flag",
    "flag_reasons",
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] = _TERMINAL) -> str:
    """Fixed-width text table of ``rows`` (floats to 3 decimals, NaN as 'nan')."""
    cols = [c for c in columns if any(c in r for r in rows)] if rows else list(columns)
    cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def check_output(out: str | Path, suffixes: Sequence[str] | None = None, *,
                 inputs: Sequence[str | Path] = ()) -> Path:  # fmt: skip
    """The output file ``out``, checked before any work: its folder exists, it is not a folder,
    nor one of ``inputs`` or inside one (:func:`casnet.data.io.outputs.check_output`), and (with
    ``suffixes``) it ends in one of them.

    Raises
    ------
    CasnetInputError
        Naming the folder that does not exist, the suffixes allowed, or the input it would
        destroy.
    """
    out = Path(out)
    if suffixes is not None and out.suffix.lower() not in suffixes:
        raise CasnetInputError(f"{out}: the output must end in one of {', '.join(suffixes)}")
    if not out.parent.is_dir():
        raise CasnetInputError(f"{out}: the folder {out.parent} does not exist")
    return outputs.check_output(out, kind="file", inputs=inputs)


def _atomic(out: Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` then rename ``tmp`` to ``out`` (same folder: the rename is atomic), under
    ``out``'s lock; temporary files of killed runs beside ``out`` are removed first."""
    check_output(out)
    lock = OutputLock(out).acquire()
    try:
        outputs.remove_stale_temporaries(out)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
        try:
            write(Path(tmp))
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        lock.release()
    return out


def _parquet(table: pd.DataFrame, meta: dict[str, str], tmp: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if meta:
        known = dict(arrow.schema.metadata or {})
        known.update({k.encode(): str(v).encode() for k, v in meta.items()})
        arrow = arrow.replace_schema_metadata(known)
    pq.write_table(arrow, tmp)


#: significant digits of a float in CSV text (issue 31: not 17): more than float32 stamps and
#: the measurement's precision (C and A errors >= 1e-4) can carry; Parquet, ECSV and FITS keep
#: every bit
CSV_DIGITS = 7


def _csv_formats(table: Table) -> dict[str, str]:
    """Astropy column formats printing every float column with :data:`CSV_DIGITS` digits."""
    return {name: f"%.{CSV_DIGITS}g" for name in table.colnames
            if getattr(table[name].dtype, "kind", "") == "f"}  # fmt: skip


def _astropy(table: Table, meta: dict[str, str], fmt: str, tmp: Path) -> None:
    import warnings

    from astropy.io.fits.verify import VerifyWarning

    table.meta.update({k: str(v) for k, v in meta.items()})
    extra = {"formats": _csv_formats(table)} if fmt == "ascii.csv" else {}
    with warnings.catch_warnings():
        # keys longer than 8 characters become HIERARCH cards: FITS's way, warned about
        warnings.simplefilter("ignore", VerifyWarning)
        table.write(tmp, format=fmt, overwrite=True, **extra)


def write_catalog(table: pd.DataFrame, out: str | Path,
                  meta: dict[str, str] | None = None) -> Path:  # fmt: skip
    """Write ``table`` to ``out`` in the format of its suffix (:data:`SUFFIXES`), atomically,
    with ``meta`` (provenance: string keys and values) in the file's metadata (Parquet key-value
    metadata, ECSV meta, FITS header; CSV carries none).

    Raises
    ------
    CasnetInputError
        For another suffix, or a folder that does not exist.
    """
    out = check_output(out, tuple(SUFFIXES))
    fmt = SUFFIXES[out.suffix.lower()]
    meta = dict(meta or {})
    if fmt is None:
        return _atomic(out, lambda tmp: _parquet(table, meta, tmp))
    if fmt == "ascii.csv":
        meta = {}  # plain CSV has no place for it (a comment line would break readers)
    return _atomic(out, lambda tmp: _astropy(Table.from_pandas(table), meta, fmt, tmp))


def write_rows(rows: Sequence[dict[str, Any]], fmt: Format, out: Path | None,
               meta: dict[str, str] | None = None) -> str | None:  # fmt: skip
    """Render ``rows`` as ``fmt``; write to ``out`` or return the text (``fits`` needs ``out``).

    JSON writes NaN as ``null`` (strict JSON); CSV and FITS keep NaN. ``meta`` (provenance) goes
    into a FITS file's header.
    """
    if fmt == "table":
        text = format_table(rows)
    elif fmt == "json":
        text = json.dumps([{k: _json_safe(v) for k, v in r.items()} for r in rows], indent=2)
    elif fmt in ("csv", "fits"):
        table = Table(rows=list(rows)) if rows else Table()
        if fmt == "fits":
            if out is None:
                raise ValueError("the fits format needs an output file (--out)")
            _atomic(Path(out), lambda tmp: _astropy(table, dict(meta or {}), "fits", tmp))
            return None
        buf = io.StringIO()
        table.write(buf, format="ascii.csv", formats=_csv_formats(table))
        text = buf.getvalue()
    else:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if out is None:
        return text
    ending = text if text.endswith("\n") else text + "\n"
    _atomic(Path(out), lambda tmp: tmp.write_text(ending))
    return None
