"""Benchmarks print figures (speed targets are checked by reading them, not by timed tests)."""

from __future__ import annotations

import math

import pytest

from casnet.benchmark import benchmark_data, benchmark_measure, format_data_report


def test_measure_benchmark_report_is_complete():
    r = benchmark_measure(3, use_statmorph=True, statmorph_n=2)
    assert r["casnet_ms"] > 0
    if r.get("statmorph") != "not installed":
        # the ratio compares the two codes on the same stamps
        assert r["statmorph_ms"] > 0 and r["ratio"] == pytest.approx(
            r["statmorph_ms"] / r["casnet_ms_same"]
        )
    assert r["machine"]["cores"] >= 1


@pytest.mark.slow
def test_data_benchmark_measures_both_sizes(tmp_path):
    r = benchmark_data(2, chunk_size=1, workdir=str(tmp_path))
    for stage in ("simulate", "clean"):
        for size in (1, 2):
            x = r[f"{stage}_{size}"]
            assert x["ms_per_galaxy"] > 0 and x["peak_rss_mb"] > 50
        assert math.isfinite(r[f"{stage}_memory_growth"])
    text = format_data_report(r)
    assert "memory growth" in text and "simulate" in text
