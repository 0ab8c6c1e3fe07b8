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

from pydantic import ValidationError, model_validator

from casnet.bench.settings import BenchmarkConfig
from casnet.core.config import Section, format_validation_error, parse_yaml
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

__all__ = ["MAX_PARAMS_BYTES", "Params", "load_params", "parse_params"]

#: the largest parameters file read: the project's is ~13 KB; a file past 1 MiB is a mistake (or
#: an attack) and is refused before it is parsed, not read whole into memory. Long input lists
#: belong in folders or globs (``data.input``).
MAX_PARAMS_BYTES = 1 << 20


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

    Raises
    ------
    CasnetConfigError
        Naming the file: missing (when explicit), unreadable, larger than
        :data:`MAX_PARAMS_BYTES`, not YAML, holding a YAML alias (``*name``; see
        :func:`casnet.core.config.parse_yaml`), or with a bad key or value.
    """
    explicit = path is not None
    file = Path(path) if explicit else project_root() / "params.yaml"
    if not file.exists():
        if explicit:
            raise CasnetConfigError(f"{file}: parameters file not found")
        return Params()
    try:
        # read one byte past the limit, never the whole file: /dev/zero or a FIFO has no st_size
        with file.open("rb") as stream:
            raw = stream.read(MAX_PARAMS_BYTES + 1)
    except OSError as exc:
        raise CasnetConfigError(
            f"{file}: cannot read the parameters file: {exc.strerror or exc}"
        ) from None
    if len(raw) > MAX_PARAMS_BYTES:
        raise CasnetConfigError(
            f"{file}: a parameters file is at most {MAX_PARAMS_BYTES:,} bytes; this one is larger"
        )
    return parse_params(parse_yaml(raw, source=str(file)), source=str(file))
