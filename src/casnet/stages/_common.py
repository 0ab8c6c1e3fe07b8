"""Helpers shared by the stages."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

__all__ = ["progress_bar", "write_metrics"]


def progress_bar(total: int, *, desc: str, initial: int = 0, enabled: bool = True) -> tqdm:
    """A tqdm bar on stderr (stdout stays machine-readable); off when ``enabled`` is False."""
    return tqdm(
        total=total, initial=initial, desc=desc, unit="galaxy", disable=not enabled,
        file=sys.stderr, dynamic_ncols=True,
    )  # fmt: skip


def write_metrics(path: str | Path, metrics: dict) -> Path:
    """Write stage metrics as JSON (DVC metrics file), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path
