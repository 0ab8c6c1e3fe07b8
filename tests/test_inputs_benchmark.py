"""casnet benchmark inputs: cleaned stamps against raw crops of the same galaxies (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

from casnet.bench.inputs import compare_inputs, format_inputs_report, raw_crop_store
from casnet.core.errors import CasnetInputError
from casnet.core.layout import RAW, TEST, TRAIN, VAL
from casnet.data.io.store import StampStore, StoreWriter
from casnet.data.preprocess import crop_normalise
from casnet.networks.settings import ArchitectureConfig, SearchConfig

ARCH = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1, dense_units=8,
                          dropout=0.25, optimizer="adam", learning_rate=0.01,
                          batch_size=16)  # fmt: skip


def _project(root, n=60, seed=0):
    """A root with data/raw (101x101 stamps, a bright 'neighbour' in every other one) and a
    split whose stamps are the same galaxies with the neighbour removed, cropped, normalised."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:101, :101] - 50.0
    galaxy = np.exp(-np.hypot(yy, xx) / 4.0)
    raw = np.empty((n, 101, 101), np.float32)
    cleaned = np.empty_like(raw)
    for i in range(n):
        body = galaxy * rng.uniform(0.5, 2.0) + rng.normal(0, 0.01, galaxy.shape)
        cleaned[i] = body
        raw[i] = body + (3.0 * np.exp(-np.hypot(yy - 12, xx + 10) / 2.0) if i % 2 else 0.0)
    ids = [f"gal{i}" for i in range(n)]
    with StoreWriter(root / RAW, stamp_shape=(101, 101), chunk_size=16) as w:
        for s in range(0, n, 16):
            w.append([{"galaxy_id": g} for g in ids[s : s + 16]], {"image": raw[s : s + 16]})
    crops = crop_normalise(cleaned)[0]
    c = crops.mean(axis=(1, 2))
    parts = {TRAIN: slice(0, 40), VAL: slice(40, 50), TEST: slice(50, 60)}
    for path, sl in parts.items():
        rows = [{"galaxy_id": ids[i], "label_concentration": 2 + 10 * c[i],
                 "label_asymmetry": c[i], "concentration_true": 2 + 10 * c[i],
                 "asymmetry_true": c[i]} for i in range(n)[sl]]  # fmt: skip
        # shuffled chunk order relative to raw: the raw stamps are found by id
        with StoreWriter(root / path, stamp_shape=(60, 60), chunk_size=8) as w:
            for s in range(0, len(rows), 8):
                idx = np.arange(n)[sl][s : s + 8]
                w.append(rows[s : s + 8], {"image": crops[idx]})
    return raw, crops, ids


def test_raw_crops_are_the_raw_stamps_of_the_same_galaxies(tmp_path):
    raw, crops, ids = _project(tmp_path)
    store = raw_crop_store(tmp_path / TEST, tmp_path / RAW, tmp_path / "rawtest")
    split = StampStore(tmp_path / TEST)
    assert store.catalog.equals(split.catalog)
    expected = crop_normalise(raw[50:60])[0]
    np.testing.assert_array_equal(np.asarray(store.array("image")[:]), expected)
    # the galaxies with a neighbour differ from the cleaned input, the others do not
    diff = np.abs(expected - crops[50:60]).reshape(10, -1).max(axis=1)
    assert (diff[1::2] > 0.05).all() and (diff[::2] < 1e-6).all()
    head = raw_crop_store(tmp_path / TEST, tmp_path / RAW, tmp_path / "head", max_galaxies=3)
    assert list(head.catalog["galaxy_id"]) == ids[50:53]


def test_a_galaxy_missing_from_raw_is_a_clear_error(tmp_path):
    _project(tmp_path)
    with StoreWriter(tmp_path / "few", stamp_shape=(101, 101), chunk_size=4) as w:
        w.append([{"galaxy_id": "elsewhere"}], {"image": np.ones((1, 101, 101), np.float32)})
    with pytest.raises(CasnetInputError, match=r"10 galaxies .* are not in"):
        raw_crop_store(tmp_path / TEST, tmp_path / "few", tmp_path / "x")


@pytest.mark.slow
def test_compare_trains_both_inputs_and_scores_them(tmp_path):
    _project(tmp_path)
    table = compare_inputs(tmp_path, {"concentration": ARCH, "asymmetry": ARCH},
                           SearchConfig(max_epochs=1, seed=0), log=lambda s: None)  # fmt: skip
    assert len(table) == 2 * 2 * 2 * 2
    changed = table[table["sample"] == "changed by cleaning"]
    assert (changed["n"] == 5).all()  # galaxies 51, 53, ... of the test set
    assert (table[table["sample"] == "all"]["n"] == 10).all()
    assert table[["mae", "rmse"]].notna().all().all()
    text = format_inputs_report(table)
    for target in ("concentration", "asymmetry"):  # one verdict line each (1-epoch networks
        # may be degenerate: then the line says so instead of naming a winner)
        line = next(x for x in text.splitlines() if x.startswith(f"{target}: "))
        assert "stamps win" in line or "no winner" in line


def test_cli_usage_and_missing_data_errors(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from casnet.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["benchmark", "inputs", "--epochs", "0"])
    assert bad.exit_code == 2 and "--epochs must be >= 1" in bad.output
    monkeypatch.setenv("CASNET_ROOT", str(tmp_path))
    empty = runner.invoke(app, ["benchmark", "inputs"])
    # main() prints a CasnetInputError as one line with its exit code
    assert isinstance(empty.exception, CasnetInputError)
    assert "data/raw not found: run the pipeline (dvc repro) first" in str(empty.exception)


def test_no_winner_is_named_beside_a_degenerate_network():
    import pandas as pd

    rows = []
    for target in ("concentration", "asymmetry"):
        for kind, r, rmse in (("cleaned", -0.09, 0.16), ("raw", 0.75, 0.13)):
            for against in ("label", "truth"):
                rows.append({"target": target, "input": kind, "sample": "all",
                             "against": against, "n": 100, "mae": rmse, "rmse": rmse,
                             "pearson_r": r if target == "asymmetry" else 0.8,
                             "epochs": 4})  # fmt: skip
    text = format_inputs_report(pd.DataFrame(rows))
    assert "concentration: raw stamps win" in text
    assert "asymmetry: no winner: the network on cleaned stamps is degenerate" in text
