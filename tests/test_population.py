"""``casnet benchmark simulate``: the population report adds up and says which targets hold."""

from __future__ import annotations

import json

import pytest

from casnet.bench.population import (
    TARGETS,
    format_population,
    plot_population,
    population,
    population_report,
)
from casnet.data.settings import SimulateConfig
from casnet.pipeline.settings import DaskConfig


@pytest.fixture(scope="module")
def small_population():
    return population(40, sim=SimulateConfig(seed=7), dask=DaskConfig(workers=0), progress=False)


def test_population_report_accounts_for_every_galaxy(small_population, tmp_path):
    rows, metrics = small_population
    report = population_report(rows, metrics)
    assert report["n"] == len(rows) == 40
    # every galaxy is either selected or removed by exactly one named cut
    assert report["n_selected"] + sum(report["removed_by_cut"].values()) == 40
    assert report["survival"] == pytest.approx(report["n_selected"] / 40)
    assert set(report["survival_by_kind"]) <= {"disk", "clumpy", "merger", "spheroid", "irregular"}
    assert report["stamp_overflows"] == 0
    assert report["label_c_p05"] <= report["label_c_p50"] <= report["label_c_p95"]
    assert [t["quantity"] for t in report["targets"]] == [k for k, _, _ in TARGETS]
    for t in report["targets"]:
        assert t["met"] == (t["value"] >= float(t["target"].split()[1])
                            if t["target"].startswith(">=")
                            else t["value"] <= float(t["target"].split()[1]))  # fmt: skip
    json.dumps(report)  # the CLI writes it as JSON
    text = format_population(report)
    assert "survival" in text and "idealised truth" in text
    assert plot_population(rows, tmp_path / "p.png").stat().st_size > 0
