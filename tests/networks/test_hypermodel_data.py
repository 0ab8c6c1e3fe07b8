"""Search space of the tuner and tf.data pipelines from stores."""

from __future__ import annotations

import keras_tuner as kt
import numpy as np
import pytest

from casnet.core.errors import CasnetInputError
from casnet.data.io.store import StoreWriter
from casnet.networks.dataset import store_dataset
from casnet.networks.hypermodel import CasnetHyperModel, architecture_from_hp
from casnet.networks.settings import SearchConfig

#: a search space small enough to train in a test (the paper's is the params.yaml default)
TINY = SearchConfig(blocks=(1, 2), conv_per_block=(1, 1), filters=(4, 8), dense_layers=(1, 1),
                    dense_units=(8, 16), batch_sizes=(8, 16), max_trials=2,
                    num_initial_points=1)  # fmt: skip


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    images = rng.random((n, 60, 60)).astype(np.float32)
    labels = images.mean(axis=(1, 2)) * 3
    with StoreWriter(tmp_path / "s", stamp_shape=(60, 60), chunk_size=16) as w:
        for lo in range(0, n, 16):
            hi = min(lo + 16, n)
            rows = [
                {"galaxy_id": f"g{i}", "label_asymmetry": float(labels[i]),
                 "label_concentration": float(2 * labels[i])}
                for i in range(lo, hi)
            ]  # fmt: skip
            w.append(rows, {"image": images[lo:hi]})
    return tmp_path / "s", images, labels


def test_default_space_is_the_papers():
    space = SearchConfig()
    assert space.powers("filters") == [8, 16, 32, 64, 128, 256]
    assert space.powers("dense_units") == [128, 256, 512, 1024]
    hp = kt.HyperParameters()
    arch = architecture_from_hp(hp, space)
    names = {h.name for h in hp.space}
    assert names == {"blocks", "conv_per_block", "filters", "dense_layers", "dense_units",
                     "dropout", "optimizer", "learning_rate", "batch_size", "head",
                     "sigma_gradient", "clipnorm"}  # fmt: skip
    assert arch.head == "gaussian"  # fixed, not searched (issue 18's better-calibrated method)
    assert arch.sigma_gradient == "shared"  # fixed too (issue 30 item 3)
    assert arch.clipnorm == 1.0  # fixed too (issue 30 item 1)
    assert 1 <= arch.blocks <= 3 and 0.25 <= arch.dropout <= 0.60


def test_dataset_streams_every_galaxy_with_its_label(store):
    path, images, labels = store
    xs, ys = zip(*store_dataset(path, "asymmetry", batch_size=7), strict=True)
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.shape == (40, 60, 60, 1)
    np.testing.assert_array_equal(x[..., 0], images)
    np.testing.assert_allclose(y, labels, rtol=1e-6)
    c = np.concatenate([b[1] for b in store_dataset(path, "concentration", batch_size=40)])
    np.testing.assert_allclose(c, 2 * labels, rtol=1e-6)


def test_shuffled_dataset_is_a_new_permutation_each_epoch(store):
    path, _, labels = store
    ds = store_dataset(path, "asymmetry", batch_size=40, shuffle=True, seed=3)
    first = np.concatenate([b[1] for b in ds])
    second = np.concatenate([b[1] for b in ds])
    np.testing.assert_allclose(np.sort(first), np.sort(labels), rtol=1e-6)
    assert not np.array_equal(first, second)


def test_dataset_learns_the_truth_and_leaves_out_galaxies_without_one(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.random((20, 60, 60)).astype(np.float32)
    truth = images.mean(axis=(1, 2))
    truth[[3, 11]] = np.nan  # the noiseless measurement failed for two galaxies
    with StoreWriter(tmp_path / "t", stamp_shape=(60, 60), chunk_size=8) as w:
        for lo in range(0, 20, 8):
            rows = [{"galaxy_id": f"g{i}", "label_asymmetry": 9.0, "label_concentration": 9.0,
                     "asymmetry_true": float(truth[i]), "concentration_true": 3.0}
                    for i in range(lo, min(lo + 8, 20))]  # fmt: skip
            w.append(rows, {"image": images[lo : lo + 8]})
    ds = store_dataset(tmp_path / "t", "asymmetry", batch_size=5, labels="truth")
    xs, ys = zip(*ds, strict=True)
    keep = np.isfinite(truth)
    np.testing.assert_allclose(np.concatenate(ys), truth[keep], rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate(xs)[..., 0], images[keep])
    assert ds.cardinality().numpy() == 4  # 18 galaxies in batches of 5
    with pytest.raises(CasnetInputError, match="labels must be"):
        store_dataset(tmp_path / "t", "asymmetry", batch_size=5, labels="physics")


def test_dataset_errors(store, tmp_path):
    path, _, _ = store
    with pytest.raises(CasnetInputError, match="target"):
        store_dataset(path, "smoothness", batch_size=4)
    with pytest.raises(CasnetInputError, match="no such store"):
        store_dataset(tmp_path / "none", "asymmetry", batch_size=4)


@pytest.mark.slow
def test_a_tiny_bayesian_search_runs_with_the_trial_batch_size(store, tmp_path):
    path, _, _ = store
    seen = []

    class Spy(CasnetHyperModel):
        def fit(self, hp, model, *args, **kwargs):
            seen.append(hp.get("batch_size"))
            return super().fit(hp, model, *args, **kwargs)

    tuner = kt.BayesianOptimization(
        Spy(TINY), objective="val_loss", max_trials=2, num_initial_points=1, seed=1,
        directory=str(tmp_path / "kt"), project_name="t", overwrite=True,
    )  # fmt: skip
    tuner.search(
        x=lambda b: store_dataset(path, "asymmetry", batch_size=b),
        validation_data=lambda b: store_dataset(path, "asymmetry", batch_size=b),
        epochs=1, verbose=0,
    )  # fmt: skip
    assert len(tuner.oracle.trials) == 2
    assert all(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    assert set(seen) <= {8, 16} and len(seen) == 2


@pytest.mark.parametrize("corner", ["smallest", "largest"])
def test_hypermodel_builds_the_corners_of_the_papers_space(corner, expected_params):
    space = SearchConfig(head="point")  # the paper's networks: one output
    hp = kt.HyperParameters()
    architecture_from_hp(hp, space)  # declares the space
    pick = min if corner == "smallest" else max
    for name in ("blocks", "conv_per_block", "dense_layers", "dropout"):
        hp.values[name] = pick(getattr(space, name))
    for name in ("filters", "dense_units"):
        hp.values[name] = pick(space.powers(name))
    hp.values["batch_size"] = pick(space.batch_sizes)
    model = CasnetHyperModel(space).build(hp)
    arch = architecture_from_hp(hp, space)
    assert model.input_shape == (None, 60, 60, 1) and model.output_shape == (None, 1)
    convs = [la for la in model.layers if la.name.startswith("conv")]
    dense = [la for la in model.layers if la.name.startswith("dense")]
    if corner == "largest":  # 3 blocks x 2 convs from 256 filters doubling; 4 x 1024 dense
        assert [c.filters for c in convs] == [256, 256, 512, 512, 1024, 1024]
        assert [d.units for d in dense] == [1024] * 4
        assert model.get_layer("dropout").rate == pytest.approx(0.60)
    else:  # 1 block of 1 conv with 8 filters; 1 x 128 dense
        assert [c.filters for c in convs] == [8]
        assert [d.units for d in dense] == [128]
        assert model.get_layer("dropout").rate == pytest.approx(0.25)
    assert model.count_params() == expected_params(arch)


@pytest.mark.parametrize("how", ["column", "stage"])
def test_no_network_trains_on_evaluation_only_galaxies(tmp_path, how):
    """Issue 29: the real COSMOS galaxies are for evaluation only; a store holding them (its
    catalogue column travels through the stages), or the real suite's own store, is refused."""
    from casnet.core.layout import EVALUATION_ONLY

    rng = np.random.default_rng(0)
    rows = [{"galaxy_id": f"g{i}", "label_asymmetry": 0.1, "label_concentration": 2.5,
             EVALUATION_ONLY: how == "column" and i == 3} for i in range(4)]  # fmt: skip
    meta = {"stage": "real-suite" if how == "stage" else "select"}
    with StoreWriter(tmp_path / "s", stamp_shape=(60, 60), chunk_size=4, meta=meta) as w:
        w.append(rows, {"image": rng.random((4, 60, 60)).astype(np.float32)})
    with pytest.raises(CasnetInputError, match="evaluation only"):
        store_dataset(tmp_path / "s", "asymmetry", batch_size=2)
