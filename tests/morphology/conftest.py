"""Fixtures of the morphology tests: simulated galaxies chosen by criteria."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import pytest

from casnet.data.settings import SimulateConfig
from casnet.data.simulate import SimulatedGalaxy, simulate_galaxy
from casnet.morphology import Measurement, measure

#: the population the measurement tests' tolerances were established on: the simulator before
#: issue 29's real-morphology structure. On the widened population the conventional C is less
#: stable for clump complexes and irregulars (r20 jumps between clumps; A(c) has several shallow
#: minima, so the aperture centre moves): tests/morphology/test_uncertainty.py records the
#: under-covering C errors there as a known defect
_BASE = SimulateConfig().without_real_morphology()


@cache
def _simulated(index: int, mag_range: tuple[float, float] | None) -> SimulatedGalaxy:
    cfg = _BASE if mag_range is None else _BASE.model_copy(update={"mag_range": mag_range})
    return simulate_galaxy(index, cfg)


@cache
def _measured(index: int, mag_range: tuple[float, float] | None) -> Measurement:
    return measure(_simulated(index, mag_range).image.astype(np.float64))


def _clean_simulated(
    count: int,
    *,
    min_snr: float,
    max_tries: int,
    mag_range: tuple[float, float] | None = None,
) -> list[tuple[SimulatedGalaxy, Measurement]]:
    """The first ``count`` simulated galaxies that casnet measures without any flag and with
    SNR_p >= ``min_snr``, with their measurements.

    Chosen by criteria rather than by index so that the tests do not depend on the exact population
    the simulator draws. ``mag_range`` overrides the simulated magnitude range (default: the
    project's). Fails the test when fewer are found in ``max_tries`` stamps.
    """
    out = []
    for index in range(max_tries):
        m = _measured(index, mag_range)
        if m.flag == 0 and m.snr_p >= min_snr:
            out.append((_simulated(index, mag_range), m))
            if len(out) == count:
                return out
    pytest.fail(f"only {len(out)} of {count} clean galaxies with SNR_p >= {min_snr} found")


#: the bright part of the simulated magnitude range: most of these stamps have SNR_p > 5, so few
#: need simulating (~0.07 s each); the population (disks, clumpy, mergers, spheroids, neighbours,
#: correlated noise) is otherwise the project's
BRIGHT = (20.0, 24.0)


@pytest.fixture(scope="session")
def simulated() -> Callable[[int, tuple[float, float] | None], SimulatedGalaxy]:
    """``simulated(index, mag_range)``: galaxy ``index`` of the default simulation with the
    magnitude range overridden (None: the project's), cached for the session."""
    return _simulated


@pytest.fixture(scope="session")
def clean_simulated() -> Callable[..., list[tuple[SimulatedGalaxy, Measurement]]]:
    """``clean_simulated(count, min_snr=..., max_tries=..., mag_range=None)``: see
    :func:`_clean_simulated` (stamps and measurements are cached for the session)."""
    return _clean_simulated
