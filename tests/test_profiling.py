"""The profiler report finds where the time goes (casnet benchmark profile)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from casnet.bench.profiling import format_profile_report, hotspots, profile_all
from casnet.params import load_params


def _busy(n: int) -> float:
    x = 0.0
    for i in range(n):  # pure Python: no call the profiler would list as a frame of its own
        x += i * 0.5
    return x


def _light() -> float:
    return _busy(200_000)


def _heavy() -> float:
    return _busy(2_000_000)


def test_hotspots_rank_functions_by_self_time():
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    _heavy()
    _light()
    profiler.stop()
    top = hotspots(profiler.last_session.root_frame())
    names = [h["function"] for h in top]
    # the busy loop's own time is where the time went; both callers have almost none
    assert names[0] == "_busy"
    assert top[0]["self_fraction"] > 0.8
    assert sum(h["self_fraction"] for h in top) <= 1.0 + 1e-9
    assert all(a["self_s"] >= b["self_s"] for a, b in itertools.pairwise(top))


@pytest.mark.slow
def test_profile_all_writes_profiles_and_hotspots(tmp_path):
    params = load_params()
    report = profile_all(params, n=4, cnn_n=16, batch_size=8, stage_n=6, out=tmp_path,
                         cluster=False)  # fmt: skip
    names = {"conventional", "cnn", "simulate_stage", "clean_stage", "measure_stage"}
    assert set(report["profiles"]) == names
    for name, p in report["profiles"].items():
        assert (tmp_path / f"{name}.txt").stat().st_size > 0
        assert (tmp_path / f"{name}.html").stat().st_size > 0
        assert p["hotspots"] and np.isfinite(p["ms_per_galaxy"]) and p["ms_per_galaxy"] > 0
    saved = json.loads((tmp_path / "hotspots.json").read_text())
    assert set(saved["profiles"]) == names
    text = format_profile_report(report)
    assert "conventional:" in text and "| function |" in text
