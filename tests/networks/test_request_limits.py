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


# --- pixels (issue 28) ----------------------------------------------------------------------


def _fits_bytes(image=None, *, declared=None, compressed=False) -> bytes:
    """FITS file bytes of ``image``; or only a header declaring a ``declared`` (ny, nx) float32
    image (no pixels sent: reading them would fail, so a refusal proves only the header was
    read)."""
    import io

    from astropy.io import fits

    if declared is not None:
        header = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2),
                              ("NAXIS1", declared[1]), ("NAXIS2", declared[0])])  # fmt: skip
        return header.tostring().encode()
    buf = io.BytesIO()
    hdus = [fits.PrimaryHDU(), fits.CompImageHDU(image)] if compressed else [fits.PrimaryHDU(image)]
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


@pytest.fixture
def serving(monkeypatch):
    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "true")
    for env in (limits.MAX_PIXELS_ENV, limits.MAX_REQUEST_PIXELS_ENV, limits.MAX_STAMPS_ENV):
        monkeypatch.delenv(env, raising=False)


def test_serving_refuses_a_fits_stamp_over_the_pixel_limit_from_its_header(model, serving):
    """The 8000x8000 of issue 28 declared by a header alone: 413 naming the limit, before any
    pixel is read (there are none to read)."""
    blob = _fits_bytes(declared=(8000, 8000))
    with pytest.raises(limits.RequestTooLarge, match="1,000,000 per stamp") as info:
        model.predict(None, {"fits": [blob]})
    assert info.value.get_http_status_code() == 413
    assert limits.MAX_PIXELS_ENV in str(info.value)


def test_serving_refuses_a_compressed_fits_stamp_over_the_limit(model, serving):
    """A tile-compressed image is small on the wire: its decompressed size is what counts."""
    image = np.zeros((1001, 1000), np.float32)  # 1,001,000 px, a few kB compressed
    with pytest.raises(limits.RequestTooLarge, match="1001x1000 = 1,001,000 pixels"):
        model.predict(None, {"fits": [_fits_bytes(image, compressed=True)]})


def test_serving_refuses_array_stamps_over_the_pixel_limits(model, serving, monkeypatch):
    stamps = np.ones((3, 60, 60), np.float32)  # 3,600 px each
    monkeypatch.setenv(limits.MAX_PIXELS_ENV, "3000")
    with pytest.raises(limits.RequestTooLarge, match="stamp 0: 60x60 = 3,600 pixels"):
        model.predict(None, stamps)
    monkeypatch.setenv(limits.MAX_PIXELS_ENV, "3600")
    monkeypatch.setenv(limits.MAX_REQUEST_PIXELS_ENV, "10000")  # two stamps fit, not three
    with pytest.raises(limits.RequestTooLarge, match="up to 2 hold 10,800 pixels") as info:
        model.predict(None, {"stamp": list(stamps)})
    assert limits.MAX_REQUEST_PIXELS_ENV in str(info.value)
    assert len(model.predict(None, stamps[:2])) == 2


def test_in_process_fits_stamps_meet_only_the_readers_own_limit(monkeypatch):
    """No serving limit in process: a 1001x1000 stamp is read; a header declaring more data
    than it sends is refused as truncated (HTTP 400 when served), never read."""
    from casnet.networks.registry import parse_stamps

    monkeypatch.delenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", raising=False)
    monkeypatch.setenv(limits.MAX_PIXELS_ENV, "1")
    image = np.zeros((1001, 1000), np.float32)
    stamps, _ = parse_stamps({"fits": [_fits_bytes(image, compressed=True)]})
    assert stamps[0].shape == (1001, 1000)
    with pytest.raises(MlflowException, match="truncated") as info:
        parse_stamps({"fits": [_fits_bytes(declared=(8000, 8000))]})
    assert info.value.get_http_status_code() == 400
