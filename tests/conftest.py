"""Shared fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from casnet.config import SimulateConfig
from casnet.sources.simulate import simulate_galaxy


@pytest.fixture(scope="session")
def sim_config() -> SimulateConfig:
    """Default simulation settings (the demo's)."""
    return SimulateConfig()


@pytest.fixture(scope="session")
def clean_galaxy(sim_config) -> np.ndarray:
    """A bright, isolated simulated stamp that measures without flags (galaxy 3 of the demo)."""
    return simulate_galaxy(3, sim_config).image.astype(np.float64)
