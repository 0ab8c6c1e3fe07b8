"""Batch-by-batch inference gives Keras' predict() numbers exactly (casnet.networks.inference)."""

from __future__ import annotations

import numpy as np
import pytest

from casnet.networks.architecture import build_model
from casnet.networks.inference import predict_array
from casnet.networks.settings import ArchitectureConfig


@pytest.fixture(scope="module")
def small_net():
    arch = ArchitectureConfig(blocks=2, conv_per_block=1, filters=4, dense_layers=1,
                              dense_units=8)  # fmt: skip
    return build_model(arch, input_size=60)


@pytest.mark.parametrize("batch_size", [1, 7, 32, 100])
def test_same_outputs_as_keras_predict(small_net, batch_size):
    x = np.random.default_rng(0).random((37, 60, 60, 1), dtype=np.float32)
    want = small_net.predict(x, batch_size=batch_size, verbose=0)
    got = predict_array(small_net, x, batch_size)
    assert got.shape == want.shape == (37, 1)
    # the same compiled step on the same slices: identical, not merely close
    np.testing.assert_array_equal(got, want)


def test_empty_input_and_bad_batch_size(small_net):
    assert predict_array(small_net, np.zeros((0, 60, 60, 1), np.float32)).shape == (0, 1)
    with pytest.raises(ValueError, match="batch_size"):
        predict_array(small_net, np.zeros((2, 60, 60, 1), np.float32), 0)
