"""Limits of one request to the served model (``mlflow models serve``; issue 19).

The scoring server answers 504 when a request runs past ``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT``
(60 s by default) but lets the model compute on: three concurrent 2,000-stamp requests grew it
to 8.7 GB for answers nobody read. So, only while serving:

- a request of more than ``CASNET_SERVE_MAX_STAMPS`` stamps (default 1,000: about 13 s of
  cleaning and scoring on 2 cores, so three at once still finish inside 60 s) is answered
  413 with the limit in the message, before any work: send larger sets in several requests
  (``casnet predict`` and the evaluation suites do);
- a request that runs past the server's timeout stops at the next stamp or batch, instead of
  computing for nobody.

In-process use (``casnet predict``, the evaluation suites) is not limited.
"""

from __future__ import annotations

import os
import time

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import DEADLINE_EXCEEDED

__all__ = [
    "DEFAULT_MAX_STAMPS",
    "MAX_STAMPS_ENV",
    "Deadline",
    "RequestTooLarge",
    "check_size",
    "max_stamps",
    "serving",
]

MAX_STAMPS_ENV = "CASNET_SERVE_MAX_STAMPS"
DEFAULT_MAX_STAMPS = 1000
#: the scoring server's own timeout (MLflow's variable and default)
TIMEOUT_ENV = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0


class RequestTooLarge(MlflowException):
    """A request over the stamp limit: HTTP 413 (no MLflow error code maps to it)."""

    def get_http_status_code(self) -> int:
        return 413


def serving() -> bool:
    """Whether this process is MLflow's scoring server (it sets this variable when it starts)."""
    return os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "").lower() == "true"


def max_stamps() -> int:
    """Stamps one request may hold (``CASNET_SERVE_MAX_STAMPS``, default 1,000)."""
    raw = os.environ.get(MAX_STAMPS_ENV, "")
    try:
        value = int(raw) if raw else DEFAULT_MAX_STAMPS
    except ValueError:
        value = DEFAULT_MAX_STAMPS
    return max(value, 1)


def check_size(n: int) -> None:
    """Refuse a request of more than :func:`max_stamps` stamps while serving (HTTP 413)."""
    limit = max_stamps()
    if serving() and n > limit:
        raise RequestTooLarge(
            f"request of {n} stamps is over this server's limit of {limit} per request "
            f"({MAX_STAMPS_ENV}); send them in requests of at most {limit}"
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
