"""Where the parallel stages run (``params.yaml`` section ``dask``)."""

from __future__ import annotations

from pydantic import Field

from casnet.core.config import Section

__all__ = ["DaskConfig"]


class DaskConfig(Section):
    """Where the parallel stages run (simulate, clean, measure)."""

    scheduler: str | None = Field(
        None, description="address of a running scheduler (tcp://host:8786); None: LocalCluster"
    )
    workers: int | None = Field(
        None, ge=0, description="LocalCluster worker processes; None: all cores; 0: in-process"
    )
