"""Limits of one request to the served model (``mlflow models serve``; issue 19).

The scoring server answers 504 when a request runs past ``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT``
(60 s by default) but lets the model compute on: three concurrent 2,000-stamp requests grew it
to 8.7 GB for answers nobody read. So, only while serving:

- a request of more than ``CASNET_SERVE_MAX_STAMPS`` stamps (default 1,000: about 13 s of
  cleaning and scoring on 2 cores, so three at once still finish inside 60 s) is answered
  413 with the limit in the message, before any work: send larger sets in several requests
  (``casnet predict`` and the evaluation suites do);
- a stamp of more than ``CASNET_SERVE_MAX_PIXELS`` pixels (default 1,000,000: 1000x1000), or
  a request whose stamps hold more than ``CASNET_SERVE_MAX_REQUEST_PIXELS`` in all (default
  50,000,000), is answered 413 with the limit in the message; a FITS stamp is checked from its
  header, before its pixels are decoded (issue 28: one 0.8 MB tile-compressed 8000x8000 FITS
  cost the server +3 GB and computed ~15 s past the 504);
- a request that runs past the server's timeout stops at the next stamp or batch, instead of
  computing for nobody.

In-process use (``casnet predict``, the evaluation suites) is not limited by these (FITS bytes
still meet the reader's own sanity limit, :data:`casnet.data.io.fits.MAX_PIXELS`).
"""

from __future__ import annotations

import math
import os
import time

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import DEADLINE_EXCEEDED

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_REQUEST_PIXELS",
    "DEFAULT_MAX_STAMPS",
    "MAX_PIXELS_ENV",
    "MAX_REQUEST_PIXELS_ENV",
    "MAX_STAMPS_ENV",
    "Deadline",
    "PixelBudget",
    "RequestTooLarge",
    "check_size",
    "max_pixels",
    "max_request_pixels",
    "max_stamps",
    "serving",
]

MAX_STAMPS_ENV = "CASNET_SERVE_MAX_STAMPS"
DEFAULT_MAX_STAMPS = 1000
MAX_PIXELS_ENV = "CASNET_SERVE_MAX_PIXELS"
#: pixels of one stamp while serving. casnet's stamps are ~101x101 (10^4 px) and the networks
#: look at the central 60x60 only, but a larger stamp is cleaned whole (galclean segments all of
#: it) and decoded whole first: 1000x1000 cleans in ~0.4 s at a ~55 MB peak on 2 cores, 2000x2000
#: in ~2.8 s at ~220 MB, and the 8000x8000 of issue 28 cost +3 GB. 1000x1000 leaves room for 10x
#: wider cutouts than the networks' training stamps
DEFAULT_MAX_PIXELS = 1_000_000
MAX_REQUEST_PIXELS_ENV = "CASNET_SERVE_MAX_REQUEST_PIXELS"
#: pixels of all the stamps of one request while serving: every stamp is decoded before the first
#: is cleaned, so the per-stamp limit alone would let 1,000 stamps of 1000x1000 ask for 4 GB.
#: 5e7 px is 200 MB as float32, five times a full request of 1,000 stamps of 101x101
DEFAULT_MAX_REQUEST_PIXELS = 50_000_000
#: the scoring server's own timeout (MLflow's variable and default)
TIMEOUT_ENV = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0


class RequestTooLarge(MlflowException):
    """A request over the stamp or pixel limits: HTTP 413 (no MLflow error code maps to it)."""

    def get_http_status_code(self) -> int:
        return 413


def serving() -> bool:
    """Whether this process is MLflow's scoring server (it sets this variable when it starts)."""
    return os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "").lower() == "true"


def _positive_env(name: str, default: int) -> int:
    """A positive integer from the environment; ``default`` when unset or not an integer."""
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        value = default
    return max(value, 1)


def max_stamps() -> int:
    """Stamps one request may hold (``CASNET_SERVE_MAX_STAMPS``, default 1,000)."""
    return _positive_env(MAX_STAMPS_ENV, DEFAULT_MAX_STAMPS)


def max_pixels() -> int:
    """Pixels one stamp may hold while serving (``CASNET_SERVE_MAX_PIXELS``, default
    1,000,000)."""
    return _positive_env(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS)


def max_request_pixels() -> int:
    """Pixels all the stamps of one request may hold while serving
    (``CASNET_SERVE_MAX_REQUEST_PIXELS``, default 50,000,000)."""
    return _positive_env(MAX_REQUEST_PIXELS_ENV, DEFAULT_MAX_REQUEST_PIXELS)


def check_size(n: int) -> None:
    """Refuse a request of more than :func:`max_stamps` stamps while serving (HTTP 413)."""
    limit = max_stamps()
    if serving() and n > limit:
        raise RequestTooLarge(
            f"request of {n} stamps is over this server's limit of {limit} per request "
            f"({MAX_STAMPS_ENV}); send them in requests of at most {limit}"
        )


class PixelBudget:
    """The pixel limits of one request: :meth:`check` each stamp's shape before its pixels are
    decoded or copied (while serving only: no limit in process)."""

    def __init__(self) -> None:
        self.active = serving()
        self.per_stamp = max_pixels()
        self.per_request = max_request_pixels()
        self.total = 0

    def check(self, index: int, shape: tuple[int, ...]) -> None:
        """Count stamp ``index`` of ``shape``; raise :class:`RequestTooLarge` (HTTP 413) when it,
        or the request so far, is over the limit."""
        if not self.active:
            return
        n = math.prod(shape)
        if n > self.per_stamp:
            size = "x".join(map(str, shape))
            raise RequestTooLarge(
                f"stamp {index}: {size} = {n:,} pixels is over this server's limit of "
                f"{self.per_stamp:,} per stamp ({MAX_PIXELS_ENV}); cut it to a stamp around the "
                "galaxy (the networks see its central crop)"
            )
        self.total += n
        if self.total > self.per_request:
            raise RequestTooLarge(
                f"the stamps up to {index} hold {self.total:,} pixels, over this server's limit "
                f"of {self.per_request:,} per request ({MAX_REQUEST_PIXELS_ENV}); send them in "
                "smaller requests"
            )


class Deadline:
    """The server's timeout for the request that started now; :meth:`check` stops the work once
    it has passed (while serving only: no limit in process)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        try:
            self.limit = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
        except ValueError:
            self.limit = DEFAULT_TIMEOUT_S
        self.active = serving()

    def check(self, done: int, total: int) -> None:
        """Raise (HTTP 504) when the timeout has passed, after ``done`` of ``total`` stamps."""
        if self.active and time.monotonic() - self.start > self.limit:
            raise MlflowException(
                f"stopped after {done} of {total} stamps: the request ran past the server's "
                f"{self.limit:g} s ({TIMEOUT_ENV}); send fewer stamps per request",
                error_code=DEADLINE_EXCEEDED,
            )
