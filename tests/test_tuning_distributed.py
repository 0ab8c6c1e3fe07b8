"""Keras Tuner's distributed mode of ``casnet tune`` against a real ``mlflow server``.

A chief (serving the oracle) and two workers share one search: every trial must be logged exactly
once, as a child of the one parent run, and the chief must write the search summary on the parent.
"""

from __future__ import annotations

import csv
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

from casnet.data.io.store import StoreWriter

MAX_TRIALS = 4
WORKERS = ("w0", "w1")
HYPERPARAMETERS = {
    "blocks", "conv_per_block", "filters", "dense_layers", "dense_units", "dropout",
    "optimizer", "learning_rate", "batch_size", "head", "sigma_gradient", "clipnorm",
}  # fmt: skip
SEARCH = {
    "blocks": "[1,2]",
    "conv_per_block": "[1,1]",
    "filters": "[4,8]",
    "dense_layers": "[1,1]",
    "dense_units": "[8,16]",
    "batch_sizes": "[8,16]",
    "num_initial_points": "1",
}
PROCESS_TIMEOUT = 300.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_store(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    images = rng.random((n, 60, 60), dtype=np.float32)
    labels = images.mean(axis=(1, 2)) * 3
    rows = [
        {
            "galaxy_id": f"g{seed}-{i}",
            "label_asymmetry": float(labels[i]),
            "label_concentration": float(2 * labels[i]),
        }
        for i in range(n)
    ]
    with StoreWriter(path, stamp_shape=(60, 60), chunk_size=64) as writer:
        writer.append(rows, {"image": images})


def _output(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else "(no output)"
    return f"--- {log.name} (last 6000 chars) ---\n{text[-6000:]}"


def _start(cmd: list[str], log: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _stop(proc: subprocess.Popen) -> None:
    """Kill the process group of a process started here (a no-op when it has exited)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


def _wait_healthy(uri: str, server: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"mlflow server exited early\n{_output(log)}"
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server at {uri} did not answer /health within {timeout:.0f} s\n"
                f"{_output(log)}")  # fmt: skip


@pytest.mark.slow
def test_distributed_search_logs_every_trial_once(tmp_path):
    import mlflow
    from mlflow import MlflowClient

    _write_store(tmp_path / "train", 48, seed=1)
    _write_store(tmp_path / "val", 16, seed=2)

    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERASTUNER_", "MLFLOW_"))}
    server_port, oracle_port = _free_port(), _free_port()
    uri = f"http://127.0.0.1:{server_port}"
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        MLFLOW_TRACKING_URI=uri,
        CASNET_ROOT=str(tmp_path),
        CUDA_VISIBLE_DEVICES="",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    common = [sys.executable, "-m", "casnet.cli", "tune", "--target", "asymmetry",
              "--train", "train", "--val", "val", "--max-trials", str(MAX_TRIALS),
              "--epochs", "2", "--patience", "1", "--quiet",
              "--oracle", f"127.0.0.1:{oracle_port}"]  # fmt: skip
    for key, value in SEARCH.items():
        common += ["--search", f"{key}={value}"]

    procs: dict[str, tuple[subprocess.Popen, Path]] = {}
    try:
        server_log = tmp_path / "mlflow-server.log"
        server = _start(
            [str(bin_dir / "mlflow"), "server",
             "--backend-store-uri", f"sqlite:///{tmp_path / 'srv.db'}",
             "--default-artifact-root", str(tmp_path / "art"),
             "--host", "127.0.0.1", "--port", str(server_port), "--workers", "1"],
            server_log, tmp_path, env,
        )  # fmt: skip
        procs["mlflow-server"] = (server, server_log)
        _wait_healthy(uri, server, server_log)

        roles = {"chief": ["--role", "chief"]}
        roles.update({w: ["--role", "worker", "--tuner-id", w] for w in WORKERS})
        for name, args in roles.items():
            log = tmp_path / f"{name}.log"
            procs[name] = (_start([*common, *args], log, tmp_path, env), log)

        # wait for all three; fail as soon as one of them fails (the others may then wait forever:
        # the chief for workers, a worker for the chief's parent run or oracle)
        deadline = time.monotonic() + PROCESS_TIMEOUT
        running = set(roles)
        while running:
            for name in sorted(running):
                proc, log = procs[name]
                rc = proc.poll()
                if rc is not None:
                    running.discard(name)
                    assert rc == 0, f"{name} exited with {rc}\n{_output(log)}"
            if running and time.monotonic() > deadline:
                pytest.fail(f"{sorted(running)} still running after {PROCESS_TIMEOUT:.0f} s\n"
                            + "\n".join(_output(lg) for _, lg in procs.values()))  # fmt: skip
            time.sleep(0.5)
        logs = "\n".join(_output(lg) for _, lg in procs.values())

        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("casnet-tune")
        assert experiment is not None, logs
        exp_id = experiment.experiment_id
        parents = client.search_runs([exp_id], "tags.`casnet.run_kind` = 'search'")
        assert len(parents) == 1, f"{len(parents)} parent runs\n{logs}"
        parent = parents[0]
        assert parent.info.status == "FINISHED", logs

        children = client.search_runs(
            [exp_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=1000
        )
        trial_ids = [c.data.tags.get("casnet.trial_id") for c in children]
        assert len(children) == MAX_TRIALS, f"child runs of trials {sorted(map(str, trial_ids))}"
        # every trial logged exactly once: as many distinct trial ids as child runs
        assert None not in trial_ids
        assert len(set(trial_ids)) == MAX_TRIALS, sorted(trial_ids)
        # no other runs in the experiment (e.g. a duplicate parent or orphaned trial runs)
        assert len(client.search_runs([exp_id], max_results=1000)) == 1 + MAX_TRIALS

        # the workers ran the trials, and shared them: each worker starts its first trial as
        # soon as it has started (~10 s, both at once), and a trial takes several seconds, so
        # one worker cannot finish all four before the other asks for one
        tuner_ids = [c.data.tags.get("casnet.tuner_id") for c in children]
        assert set(tuner_ids) == set(WORKERS), tuner_ids

        for child in children:
            name = f"trial {child.data.tags['casnet.trial_id']}"
            assert child.info.status == "FINISHED", name
            assert child.data.tags.get("casnet.trial_status") == "COMPLETED", name
            assert HYPERPARAMETERS <= set(child.data.params), (name, sorted(child.data.params))
            history = client.get_metric_history(child.info.run_id, "val_rmse")
            steps = sorted(m.step for m in history)
            assert steps, f"{name}: no val_rmse history"
            assert steps[0] == 1, (name, steps)
            assert steps == list(range(1, len(steps) + 1)), (name, steps)  # once per epoch
            assert len(steps) <= 2, (name, steps)  # --epochs 2
            assert all(np.isfinite(m.value) for m in history), name

        # the chief's summary on the parent run
        best = parent.data.tags.get("casnet.best_trial_id")
        assert best in set(trial_ids), (best, trial_ids)
        best_params = {k.removeprefix("best.") for k in parent.data.params if k.startswith("best.")}
        assert best_params == HYPERPARAMETERS
        dst = tmp_path / "downloaded"
        dst.mkdir()
        table = mlflow.artifacts.download_artifacts(
            run_id=parent.info.run_id, artifact_path="trials.csv", tracking_uri=uri,
            dst_path=str(dst),
        )  # fmt: skip
        with open(table, newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == MAX_TRIALS, rows
        assert sorted(r["trial_id"] for r in rows) == sorted(trial_ids)
        run_ids = {c.data.tags["casnet.trial_id"]: c.info.run_id for c in children}
        assert {r["trial_id"]: r["run_id"] for r in rows} == run_ids
        best_json = mlflow.artifacts.download_artifacts(
            run_id=parent.info.run_id, artifact_path="best_hyperparameters.json",
            tracking_uri=uri, dst_path=str(dst),
        )  # fmt: skip
        assert json.loads(Path(best_json).read_text())["trial_id"] == best
    finally:
        for proc, _ in procs.values():
            _stop(proc)
