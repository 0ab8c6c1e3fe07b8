"""Shared helpers of the network tests."""

from __future__ import annotations

import pytest

from casnet.networks.architecture import Architecture


def _expected_params(arch: Architecture, size: int = 60) -> int:
    """Trainable + non-trainable parameters counted by hand from the layer definitions."""
    total, channels = 0, 1
    for b in range(arch.blocks):
        filters = arch.filters * 2**b
        for _ in range(arch.conv_per_block):
            total += (3 * 3 * channels + 1) * filters
            channels = filters
            size -= 2
        size //= 2
        total += 4 * channels  # BatchNormalization: gamma, beta, moving mean and variance
    features = size * size * channels
    for _ in range(arch.dense_layers):
        total += (features + 1) * arch.dense_units
        features = arch.dense_units
    return total + features + 1


@pytest.fixture
def expected_params():
    """Parameter count of an architecture, by hand from the layer definitions."""
    return _expected_params
