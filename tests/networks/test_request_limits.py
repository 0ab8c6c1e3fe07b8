"""The served model's request limits (casnet.networks.limits, issue 19): a size limit answered
413 and the server's timeout stopping the work, only while serving."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.exceptions import MlflowException

from casnet.networks import limits
from casnet.networks.architecture import build_model
from casnet.networks.registry import CasnetModel
from casnet.networks.settings import ArchitectureConfig

ARCH = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1, dense_units=8,
                          dropout=0.25, optimizer="adam", learning_rate=0.01,
                          batch_size=16)  # fmt: skip


@pytest.fixture(scope="module")
def model():
    return CasnetModel({t: build_model(ARCH) for t in ("concentration", "asymmetry")})


@pytest.fixture
def stamps():
    return np.random.default_rng(0).random((3, 60, 60)).astype(np.float32)


def test_in_process_nothing_is_limited(model, stamps, monkeypatch):
    monkeypatch.delenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", raising=False)
    monkeypatch.setenv(limits.MAX_STAMPS_ENV, "1")
    monkeypatch.setenv(limits.TIMEOUT_ENV, "0")
    assert len(model.predict(None, stamps)) == 3


def test_serving_refuses_a_request_over_the_limit_with_413(model, stamps, monkeypatch):
    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "true")
    monkeypatch.setenv(limits.MAX_STAMPS_ENV, "2")
    with pytest.raises(limits.RequestTooLarge, match="limit of 2 per request") as info:
        model.predict(None, stamps)
    assert info.value.get_http_status_code() == 413
    assert len(model.predict(None, stamps[:2])) == 2
    monkeypatch.delenv(limits.MAX_STAMPS_ENV)
    assert limits.max_stamps() == limits.DEFAULT_MAX_STAMPS


def test_serving_stops_the_work_at_the_servers_timeout(model, stamps, monkeypatch):
    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "true")
    monkeypatch.setenv(limits.TIMEOUT_ENV, "0")  # already past: stops before the first batch
    with pytest.raises(MlflowException, match="stopped after 0 of 3 stamps") as info:
        model.predict(None, stamps)
    assert info.value.get_http_status_code() == 504
