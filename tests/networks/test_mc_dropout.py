"""MC dropout (casnet.networks.mc_dropout, issue 18): dropout is the only randomness, the mean
over passes is the network's own prediction, and the parts of the uncertainty add in
quadrature."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from casnet.networks.architecture import build_model
from casnet.networks.inference import predict_array
from casnet.networks.mc_dropout import mc_dropout, stochastic_network
from casnet.networks.settings import ArchitectureConfig
from casnet.networks.uncertainty import mean_and_sigma

ARCH = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1, dense_units=16,
                          dropout=0.3, optimizer="adam", learning_rate=0.01, batch_size=16,
                          head="gaussian")  # fmt: skip


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(3).random((12, 60, 60, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def gaussian():
    keras.utils.set_random_seed(1)
    return build_model(ARCH)


def test_same_seed_same_numbers_other_seed_other_masks(gaussian, x):
    a, b = mc_dropout(gaussian, x, passes=4, seed=7), mc_dropout(gaussian, x, passes=4, seed=7)
    np.testing.assert_array_equal(a.mean, b.mean)
    c = mc_dropout(gaussian, x, passes=4, seed=8)
    assert not np.array_equal(a.mean, c.mean)
    assert (a.epistemic > 0).all()


def test_the_mean_over_passes_is_the_networks_prediction(gaussian, x):
    # dropout sits just before the linear output layer and Keras rescales the kept units, so the
    # expected mean over masks is the deterministic prediction exactly: with batch normalisation
    # in training mode (batch statistics) it would not be
    mu, _ = mean_and_sigma(predict_array(gaussian, x))
    r = mc_dropout(gaussian, x, passes=400, seed=0)
    np.testing.assert_allclose(r.mean, mu, atol=4 * r.epistemic.max() / np.sqrt(400))


def test_a_prediction_does_not_depend_on_its_batch(gaussian, x):
    net = stochastic_network(gaussian, seed=5)
    alone = mc_dropout(gaussian, x[:1], passes=300, network=net).mean[0]
    within = mc_dropout(gaussian, x, passes=300, network=net)
    assert alone == pytest.approx(within.mean[0], abs=5 * within.epistemic[0] / np.sqrt(300))


def test_the_parts_add_in_quadrature(gaussian, x):
    r = mc_dropout(gaussian, x, passes=5)
    assert np.isfinite(r.aleatoric).all() and (r.aleatoric > 0).all()
    np.testing.assert_allclose(r.total, np.hypot(r.epistemic, r.aleatoric))
    point = build_model(ARCH.model_copy(update={"head": "point"}))
    p = mc_dropout(point, x, passes=5)
    assert np.isnan(p.aleatoric).all()
    np.testing.assert_allclose(p.total, p.epistemic)


def test_networks_it_cannot_serve_are_refused(x):
    with pytest.raises(ValueError, match="no dropout"):
        stochastic_network(build_model(ARCH.model_copy(update={"dropout": 0.0})))
    inp = keras.Input((4,))
    dense = keras.layers.Dense(3)(inp)
    out = keras.layers.Add()([keras.layers.Dropout(0.5)(dense), dense])
    with pytest.raises(ValueError, match="chain"):
        stochastic_network(keras.Model(inp, out))
    with pytest.raises(ValueError, match="2 passes"):
        mc_dropout(build_model(ARCH), x, passes=1)
