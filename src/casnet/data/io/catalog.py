"""Measurement tables: formatting for the terminal and writing to CSV, JSON or FITS."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from astropy.table import Table

__all__ = ["FORMATS", "format_table", "write_rows"]

FORMATS = ("table", "json", "csv", "fits")
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


def write_rows(rows: Sequence[dict[str, Any]], fmt: Format, out: Path | None) -> str | None:
    """Render ``rows`` as ``fmt``; write to ``out`` or return the text (``fits`` needs ``out``).

    JSON writes NaN as ``null`` (strict JSON); CSV and FITS keep NaN.
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
            table.write(out, format="fits", overwrite=True)
            return None
        import io

        buf = io.StringIO()
        table.write(buf, format="ascii.csv")
        text = buf.getvalue()
    else:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if out is None:
        return text
    Path(out).write_text(text if text.endswith("\n") else text + "\n")
    return None
