"""All of ``params.yaml``: the sections of every package assembled, and the one reader of the file.

Each package owns its settings (:mod:`casnet.morphology.settings`, :mod:`casnet.data.settings`,
:mod:`casnet.pipeline.settings`, :mod:`casnet.networks.settings`, :mod:`casnet.evaluation.settings`,
:mod:`casnet.bench.settings`); this module puts them together and checks what spans sections. It is
the application layer: only the command line (and the MLflow entry points through it) imports it;
library functions take the sections they read.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from casnet.bench.settings import BenchmarkConfig
from casnet.core.config import Section, format_validation_error
from casnet.core.errors import CasnetConfigError
from casnet.core.layout import project_root
from casnet.data.settings import (
    AugmentConfig,
    CleanConfig,
    DataConfig,
    IngestConfig,
    SelectConfig,
    SimulateConfig,
    SplitConfig,
    StoreConfig,
)
from casnet.evaluation.settings import EvaluateConfig
from casnet.morphology.settings import MorphologyConfig
from casnet.networks.settings import ModelConfig, SearchConfig
from casnet.pipeline.settings import DaskConfig
from casnet.science.settings import ScienceConfig

__all__ = ["Params", "load_params", "parse_params"]


class Params(Section):
    """All of ``params.yaml``."""

    data: DataConfig = DataConfig()
    morphology: MorphologyConfig = MorphologyConfig()
    simulate: SimulateConfig = SimulateConfig()
    clean: CleanConfig = CleanConfig()
    ingest: IngestConfig = IngestConfig()
    select: SelectConfig = SelectConfig()
    split: SplitConfig = SplitConfig()
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig = ModelConfig()
    search: SearchConfig = SearchConfig()
    store: StoreConfig = StoreConfig()
    dask: DaskConfig = DaskConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    science: ScienceConfig = ScienceConfig()

    @model_validator(mode="after")
    def _check_crop_fits(self) -> Params:
        stamp = (
            self.simulate.stamp_size if self.data.source == "simulate" else self.ingest.stamp_size
        )
        if self.select.crop_size > stamp:
            section = "simulate" if self.data.source == "simulate" else "ingest"
            raise ValueError(
                f"select.crop_size ({self.select.crop_size}) is larger than "
                f"{section}.stamp_size ({stamp}): the crop must fit in the stamps"
            )
        return self


def parse_params(data: Mapping[str, Any] | None, *, source: str = "params") -> Params:
    """Validate a mapping (the parsed YAML) into :class:`Params`.

    Raises
    ------
    CasnetConfigError
        Naming every bad key, its value and what is allowed.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise CasnetConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        return Params.model_validate(dict(data))
    except ValidationError as exc:
        raise CasnetConfigError(format_validation_error(exc, source, Params)) from None


def load_params(path: str | Path | None = None) -> Params:
    """Load and validate ``params.yaml``.

    Parameters
    ----------
    path : str or Path, optional
        The file; default: ``params.yaml`` at the project root. A missing default file gives the
        built-in defaults (so the library works outside a checkout); a missing explicit file is an
        error.
    """
    explicit = path is not None
    file = Path(path) if explicit else project_root() / "params.yaml"
    if not file.exists():
        if explicit:
            raise CasnetConfigError(f"{file}: parameters file not found")
        return Params()
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise CasnetConfigError(f"{file}: not valid YAML: {exc}") from None
    return parse_params(data, source=str(file))
