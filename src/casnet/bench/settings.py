"""Settings of ``casnet benchmark`` (``params.yaml`` section ``benchmark``)."""

from __future__ import annotations

from typing import Protocol

from pydantic import Field

from casnet.core.config import Section
from casnet.data.settings import CleanConfig, SimulateConfig, StoreConfig
from casnet.morphology.settings import MorphologyConfig
from casnet.networks.settings import ModelConfig

__all__ = ["BenchmarkConfig", "BenchmarkParams"]


class BenchmarkConfig(Section):
    """Settings of ``casnet benchmark``."""

    n: int = Field(200, ge=1, description="galaxies measured")
    repeats: int = Field(1, ge=1, description="repeats; the median is reported")
    statmorph_n: int | None = Field(
        None, ge=1, description="galaxies given to statmorph (None: same as n)"
    )


class BenchmarkParams(Protocol):
    """The sections a benchmark reads (:class:`casnet.params.Params` has them all): the
    benchmarks run the project's own settings, and take them without importing the application
    layer."""

    @property
    def simulate(self) -> SimulateConfig: ...
    @property
    def morphology(self) -> MorphologyConfig: ...
    @property
    def clean(self) -> CleanConfig: ...
    @property
    def model(self) -> ModelConfig: ...
    @property
    def store(self) -> StoreConfig: ...
