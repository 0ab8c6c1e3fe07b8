"""The network mean's recalibration on the validation set (issue 30 item 2, the high-A tail):
the fitted maps on a squeezed synthetic network, the layer that carries them, and a training
that fits one and logs a network that loads in Keras's safe mode."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from casnet.networks.recalibration import MeanMap, apply_mean_map, fit_mean_map, with_mean_map


def _squeezed(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (A-like, a long high tail) and the outputs of a network that squeezes them toward
    the middle: 0.1 + 0.5 (label - 0.1) plus scatter (the 12-02 champion's high-A bias, -0.12
    at A 0.3-0.5, is of this size)."""
    rng = np.random.default_rng(seed)
    labels = rng.gamma(2.0, 0.06, n)
    outputs = 0.1 + 0.5 * (labels - 0.1) + rng.normal(0.0, 0.01, n)
    return outputs, labels


def _rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def test_isotonic_map_undoes_the_squeeze_on_new_galaxies():
    fit_out, fit_lab = _squeezed(2000, 1)
    x, y = fit_mean_map(fit_out, fit_lab, "isotonic")
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) >= 0)
    out, lab = _squeezed(2000, 2)  # galaxies the map was not fitted on
    mapped = apply_mean_map(out, x, y)
    assert _rmse(mapped, lab) < 0.5 * _rmse(out, lab)
    high = lab > 0.3
    assert np.mean(out[high] - lab[high]) < -0.08  # the squeeze
    assert abs(np.mean(mapped[high] - lab[high])) < 0.03  # undone
    # the ranking is kept: a monotone map
    assert np.all(np.diff(mapped[np.argsort(out)]) >= -1e-12)


def test_quantile_map_matches_the_count_above_a_cut():
    fit_out, fit_lab = _squeezed(3000, 3)
    x, y = fit_mean_map(fit_out, fit_lab, "quantile")
    out, lab = _squeezed(3000, 4)
    mapped = apply_mean_map(out, x, y)
    n_lab = int((lab > 0.3).sum())
    assert int((out > 0.3).sum()) < 0.2 * n_lab  # squeezed: few above the cut
    assert abs(int((mapped > 0.3).sum()) - n_lab) < 0.1 * n_lab


def test_fit_refuses_what_it_cannot_map():
    with pytest.raises(ValueError, match="method"):
        fit_mean_map([0.1, 0.2], [0.1, 0.2], "linear")
    with pytest.raises(ValueError, match="distinct"):
        fit_mean_map([0.1, 0.1, 0.1], [0.1, 0.2, 0.3], "isotonic")
    with pytest.raises(ValueError, match="distinct"):
        fit_mean_map([np.nan, 0.1], [0.1, 0.2], "isotonic")
    _, y = fit_mean_map([0.1, 0.2, np.nan, 0.3], [0.0, 0.2, 5.0, 0.4], "isotonic")
    assert y.max() <= 0.4  # the NaN pair left out


def test_the_layer_computes_the_map_keeps_the_sigma_and_survives_a_safe_load(tmp_path):
    x, y = np.array([0.0, 0.1, 0.3]), np.array([0.0, 0.25, 0.6])
    values = np.array([-0.2, 0.0, 0.05, 0.1, 0.2, 0.3, 0.5], dtype=np.float32)
    want = apply_mean_map(values, x, y)
    # slope 1 beyond the knots: an output outside the validation range moves as it did
    assert want[0] == pytest.approx(-0.2) and want[-1] == pytest.approx(0.8)
    inp = keras.Input((2,))
    model = keras.Model(inp, MeanMap(list(x), list(y))(inp))
    raw = np.stack([values, np.linspace(-1, 1, values.size)], axis=1).astype(np.float32)
    got = np.asarray(model.predict(raw, verbose=0))
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[:, 1], raw[:, 1])  # the raw sigma column untouched
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path, compile=False, safe_mode=True)
    np.testing.assert_allclose(np.asarray(again.predict(raw, verbose=0)), got, rtol=1e-6)
    with pytest.raises(ValueError, match="increasing"):
        MeanMap([0.0, 0.0], [0.0, 1.0])
    one = keras.Input((1,))
    point = keras.Model(one, keras.layers.Identity()(one))
    assert with_mean_map(point, x, y).output_shape == (None, 1)


def test_a_training_with_recalibration_logs_a_mapped_network(tmp_path, commit_project,
                                                             monkeypatch):  # fmt: skip
    """search.recalibration = isotonic: the logged network ends with the map (then the sigma
    factor), it loads in the combined model, and a fine-tuning starts without either."""
    import mlflow

    from casnet.data.io.store import StoreWriter
    from casnet.networks.settings import ArchitectureConfig, SearchConfig
    from casnet.networks.train import _network_in, train
    from casnet.networks.uncertainty import SigmaScale

    root = tmp_path / "project"
    stores = {"train": root / "data" / "augmented", "val": root / "data" / "split" / "val",
              "test": root / "data" / "split" / "test"}  # fmt: skip
    rng = np.random.default_rng(0)
    for path, n in zip(stores.values(), (48, 32, 16), strict=True):
        images = rng.random((n, 60, 60)).astype(np.float32)
        rows = [{"galaxy_id": f"{path.name}-{i}", "label_asymmetry": float(3 * im.mean()),
                 "label_concentration": float(0.5 + 3 * im.mean())}
                for i, im in enumerate(images)]  # fmt: skip
        with StoreWriter(path, stamp_shape=(60, 60), chunk_size=64) as w:
            w.append(rows, {"image": images})
    commit_project(root)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CASNET_ROOT", str(root))
    budget = SearchConfig(max_epochs=1, patience=5, seed=0, recalibration="isotonic")
    arch = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1,
                              dense_units=8, optimizer="adam", batch_size=16,
                              head="gaussian")  # fmt: skip
    result = train("asymmetry", arch, **stores, budget=budget, root=root, verbose=0, figure=False)
    assert result.metrics["recalibration_knots"] >= 2
    kinds = [type(layer) for layer in result.network.layers[-2:]]
    assert kinds == [MeanMap, SigmaScale]
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    try:
        folder = mlflow.artifacts.download_artifacts(result.model_uri, dst_path=str(tmp_path / "m"))
    finally:
        mlflow.set_tracking_uri(None)
    from pathlib import Path

    bare = _network_in(Path(folder), "the trained network", "asymmetry")
    assert not any(isinstance(layer, (MeanMap, SigmaScale)) for layer in bare.layers)
    # a fresh process that has imported nothing of the networks loads it by its run (the science
    # report's path: a MeanMap once failed to rebuild there, 2026-12-08)
    code = (
        "import sys; from casnet.networks.mlmodel import load_logged_network; "
        "net = load_logged_network(sys.argv[1]); print(type(net.layers[-2]).__name__)"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db"}
    done = subprocess.run([sys.executable, "-c", code, result.model_uri], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "MeanMap"
