"""Progress on long work: one kind of bar for every stage and command."""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(total: int, *, desc: str, initial: int = 0, enabled: bool = True) -> tqdm:
    """A tqdm bar on stderr (stdout stays machine-readable); off when ``enabled`` is False."""
    return tqdm(
        total=total, initial=initial, desc=desc, unit="galaxy", disable=not enabled,
        file=sys.stderr, dynamic_ncols=True,
    )  # fmt: skip
