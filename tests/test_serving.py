"""The registered ``casnet@champion`` served by ``mlflow models serve`` over HTTP (end to end)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from casnet.data.settings import CleanConfig, SimulateConfig
from casnet.data.simulate import simulate_galaxy
from casnet.networks import registry
from casnet.networks.dataset import TARGETS
from casnet.networks.settings import ArchitectureConfig

pytestmark = pytest.mark.slow

#: Gaussian heads: the answer carries each value's sigma (issue 18)
ARCH = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1, dense_units=8,
                          dropout=0.25, optimizer="adam", learning_rate=0.01,
                          batch_size=16, head="gaussian")  # fmt: skip
COLUMNS = {c for t in TARGETS for c in (t, f"{t}_err")}
URI = "models:/casnet@champion"
#: the server's stamp limit per request in these tests (default 1,000)
MAX_STAMPS = 8
STARTUP_S = 120


def _without_mlflow_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}


#: the simulated galaxies sent: some have neighbours (galaxy 1's is inside the 60x60 crop)
INDICES = range(5)


@pytest.fixture(scope="module")
def stamps() -> np.ndarray:
    """Five simulated 101x101 galaxies: what a caller of the service sends."""
    cfg = SimulateConfig()
    return np.stack([simulate_galaxy(i, cfg).image for i in INDICES]).astype(np.float32)


def _pipeline_inputs(stamps: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The galaxies' ids and the network-ready stamps the pipeline makes of them: its clean
    stage (galclean seeded by the id), then select's crop and normalisation."""
    from casnet.data.clean import galaxy_rng, galclean
    from casnet.data.preprocess import crop_normalise

    cfg = SimulateConfig()
    ids = [simulate_galaxy(i, cfg).galaxy_id for i in INDICES]
    clean = CleanConfig()
    cleaned = np.stack([galclean(s.astype(np.float64), config=clean,
                                 rng=galaxy_rng(clean.seed, gid)).image
                        for s, gid in zip(stamps, ids, strict=True)])  # fmt: skip
    return ids, crop_normalise(cleaned.astype(np.float32))[0]


@pytest.fixture(scope="module")
def project(tmp_path_factory, stamps, registered_project):
    """A project root whose store holds both networks and a registered ``casnet@champion``.

    Also returns the in-process prediction for ``stamps`` (what the server must answer).
    """
    root = tmp_path_factory.mktemp("serving")
    registered_project(root, ARCH)
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
            mp.delenv(key)
        mp.setenv("CASNET_ROOT", str(root))
        model = registry.load(URI, root=root)
        expected = model.predict(stamps)
        ids = [f"g{i}" for i in range(len(stamps))]
        with_ids = model.predict({"stamp": list(stamps), "galaxy_id": ids})
        sim_ids, ready = _pipeline_inputs(stamps)
        pipeline = model.predict(ready)  # crop-sized: taken as network-ready, not cleaned again
    return {"root": root, "expected": expected, "with_ids": with_ids, "sim_ids": sim_ids,
            "pipeline": pipeline, "ready": ready}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, body: bytes | None = None, timeout: float = 60):
    """(status, body text) of a GET (no body) or a JSON POST; HTTP errors are answers too."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    req = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def server(project):
    """``mlflow models serve`` of ``casnet@champion``: yields (base URL, log reader)."""
    root = project["root"]
    port = _free_port()
    env = _without_mlflow_env()
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
    env["CASNET_SERVE_MAX_STAMPS"] = str(MAX_STAMPS)
    # `--env-manager local` execs `uvicorn` from PATH (design guide sec. 7)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    log_path = root / "serve.log"
    cmd = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", URI,
           "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)]  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def log() -> str:
        return f"\n--- server log ({log_path}) ---\n{log_path.read_text(errors='replace')}"

    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow models serve exited with {proc.returncode}{log()}")
            try:
                if _request(f"{url}/ping", timeout=5)[0] == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow models serve did not answer /ping in {STARTUP_S} s{log()}")
            time.sleep(0.5)
        yield url, log
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


def _invoke(server, payload) -> tuple[int, str]:
    url, _ = server
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return _request(f"{url}/invocations", body)


def _predictions(text: str) -> list[dict]:
    """Rows of a scoring answer: MLflow 3 wraps them as ``{"predictions": [...]}``."""
    answer = json.loads(text)
    rows = answer["predictions"] if isinstance(answer, dict) else answer
    assert isinstance(rows, list)
    return rows


def test_ping_and_health(server):
    url, log = server
    for path in ("/ping", "/health"):
        assert _request(f"{url}{path}")[0] == 200, log()


def test_an_array_of_stamps_scores_as_in_process(server, project, stamps):
    status, text = _invoke(server, {"inputs": stamps.tolist()})
    assert status == 200, text + server[1]()
    rows = _predictions(text)
    expected = project["expected"]
    assert len(rows) == len(stamps)
    assert all(set(row) == COLUMNS for row in rows), rows
    for col in COLUMNS:
        got = np.array([row[col] for row in rows], dtype=np.float64)
        np.testing.assert_allclose(got, expected[col].to_numpy(), rtol=0, atol=1e-5)
    assert all(row[f"{t}_err"] > 0 for row in rows for t in TARGETS)


def test_stamps_with_galaxy_ids_keep_the_ids(server, project, stamps):
    ids = [f"g{i}" for i in range(len(stamps))]
    status, text = _invoke(server, {"inputs": {"stamp": stamps.tolist(), "galaxy_id": ids}})
    assert status == 200, text + server[1]()
    rows = _predictions(text)
    assert [row["galaxy_id"] for row in rows] == ids
    expected = project["with_ids"]
    for target in TARGETS:
        got = np.array([row[target] for row in rows], dtype=np.float64)
        np.testing.assert_allclose(got, expected[target].to_numpy(), rtol=0, atol=1e-5)


def test_the_served_model_sees_what_the_trained_one_saw(server, project, stamps):
    # issue 17: a raw stamp sent with its galaxy id is cleaned exactly as the pipeline cleaned
    # it (same galclean, same seed), so it scores as the pipeline's network-ready stamp does
    payload = {"inputs": {"stamp": stamps.tolist(), "galaxy_id": project["sim_ids"]}}
    status, text = _invoke(server, payload)
    assert status == 200, text + server[1]()
    rows = _predictions(text)
    pipeline = project["pipeline"]
    for target in TARGETS:
        got = np.array([row[target] for row in rows], dtype=np.float64)
        np.testing.assert_allclose(got, pipeline[target].to_numpy(), rtol=0, atol=1e-5)
    # and the cleaning matters here: it changes the network input of some of these galaxies
    from casnet.data.preprocess import crop_normalise

    changed = np.abs(project["ready"] - crop_normalise(stamps)[0]).max(axis=(1, 2))
    assert (changed > 0.01).any(), changed


_SMALL = np.ones((2, 10, 10)).tolist()
_NAN = np.full((2, 101, 101), np.nan).tolist()
_RAGGED = [np.ones((101, 101)).tolist(), np.ones((80, 80)).tolist()]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param({"inputs": [1.0, 2.0, 3.0]}, "stamps must be 2-D images", id="1-D list"),
        pytest.param({"inputs": _SMALL}, "10x10 px is smaller than 60x60", id="10x10 stamps"),
        # Python's json writes NaN literals, which MLflow's parser accepts: casnet rejects them
        pytest.param({"inputs": _NAN}, "no finite positive pixel", id="NaN-only stamps"),
        pytest.param({"inputs": [[["a"] * 101] * 101]}, "non-numeric values", id="strings"),
        pytest.param({"inputs": []}, "empty batch", id="empty batch"),
        pytest.param(
            {"inputs": {"stamp": _SMALL, "galaxy_id": ["a"]}},
            "smaller than",
            id="ids and small stamps",
        ),
        pytest.param(
            {"inputs": {"stamp": _NAN, "galaxy_id": ["a"]}}, "1 galaxy ids for 2", id="too few ids"
        ),
        # MLflow's own parser rejects these before casnet sees them
        pytest.param(b'{"inputs": [[1, 2', "valid JSON", id="invalid JSON"),
        pytest.param({"inputs": _RAGGED}, "inhomogeneous", id="stamps of different sizes"),
        pytest.param({"stamp": _SMALL}, "exactly one of the input fields", id="no inputs key"),
    ],
)
def test_malformed_payloads_get_a_400_with_a_message(server, payload, message):
    status, text = _invoke(server, payload)
    assert status == 400, f"{status}: {text[:2000]}{server[1]()}"
    answer = json.loads(text)
    assert message in answer["message"], answer


def test_a_request_over_the_stamp_limit_gets_413_with_the_limit(server, stamps):
    big = np.concatenate([stamps, stamps])[: MAX_STAMPS + 1]
    status, text = _invoke(server, {"inputs": big.tolist()})
    assert status == 413, text + server[1]()
    message = json.loads(text)["message"]
    assert f"limit of {MAX_STAMPS} per request" in message and "CASNET_SERVE_MAX_STAMPS" in message
    status, _ = _invoke(server, {"inputs": big[:MAX_STAMPS].tolist()})
    assert status == 200


def test_a_fits_stamp_over_the_pixel_limit_gets_413_from_its_header(server):
    """Issue 28: a header declaring 8000x8000 (and no pixels: only the header can be read) is
    answered 413 naming the per-stamp limit (default 1,000,000), not decoded."""
    import base64

    from astropy.io import fits

    header = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2), ("NAXIS1", 8000),
                          ("NAXIS2", 8000)])  # fmt: skip
    blob = base64.b64encode(header.tostring().encode()).decode()
    status, text = _invoke(server, {"inputs": {"fits": [blob]}})
    assert status == 413, text + server[1]()
    message = json.loads(text)["message"]
    assert "1,000,000 per stamp" in message and "CASNET_SERVE_MAX_PIXELS" in message
