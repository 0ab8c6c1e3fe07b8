"""The REST scoring server: ``mlflow models serve`` started, waited for, called and stopped.

Used by ``casnet benchmark predict`` (and usable from scripts). The server runs in its own
process group with the virtual environment's ``bin`` first on ``PATH`` (MLflow execs ``uvicorn``
from ``PATH``, or it exits with 127) and answers ``POST /invocations`` with
``{"predictions": [...]}``.

MLflow's server loads the model as every pyfunc model is loaded: it unpickles
``python_model.pkl`` and imports what ``MLmodel`` names. :func:`scoring_server` therefore serves
only a folder that :func:`casnet.networks.trust.check_model` accepts (a ``models:/`` URI is
downloaded and checked first, then that folder is served).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from casnet.core.errors import CasnetError
from casnet.networks.trust import check_model

__all__ = ["free_port", "invoke", "scoring_server"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except (urllib.error.URLError, OSError):
        return 0


@contextmanager
def scoring_server(
    model: str, *, port: int | None = None, tracking_uri: str | None = None,
    startup_s: float = 180.0,
) -> Iterator[str]:  # fmt: skip
    """Serve ``model`` (a local folder or ``models:/`` URI) on 127.0.0.1; yields the base URL.

    Raises
    ------
    CasnetInputError
        ``model`` is not casnet's combined model as casnet writes it
        (:func:`casnet.networks.trust.check_model`): refused before the server loads it.
    CasnetError
        The server did not start.
    """
    with tempfile.TemporaryDirectory(prefix="casnet-serve-") as tmp:
        folder = _checked_folder(model, Path(tmp), tracking_uri)
        with _serve(folder, port=port, tracking_uri=tracking_uri, startup_s=startup_s) as url:
            yield url


def _checked_folder(model: str, tmp: Path, tracking_uri: str | None) -> str:
    """A local folder of ``model`` that :func:`check_model` accepted (a URI downloaded to
    ``tmp``)."""
    folder = Path(model)
    if not folder.is_dir():
        import mlflow

        folder = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=model, dst_path=str(tmp), tracking_uri=tracking_uri,
            registry_uri=tracking_uri,
        ))  # fmt: skip
    check_model(folder, model)  # messages name what was asked, not the download
    return str(folder)


@contextmanager
def _serve(model: str, *, port: int | None, tracking_uri: str | None,
           startup_s: float) -> Iterator[str]:  # fmt: skip
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    cmd = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model,
           "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)]  # fmt: skip
    log = tempfile.NamedTemporaryFile(prefix="casnet-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while _get(f"{url}/ping", 5) != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                text = Path(log.name).read_text(errors="replace")[-3000:]
                raise CasnetError(f"the scoring server did not start (log {log.name}):\n{text}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def invoke(url: str, payload: Any, timeout: float = 600.0) -> tuple[int, Any]:
    """POST ``payload`` (JSON-serialisable, or bytes) to ``url/invocations``: (status, JSON)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(f"{url}/invocations", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            return exc.code, json.loads(text)
        except json.JSONDecodeError:
            return exc.code, text
