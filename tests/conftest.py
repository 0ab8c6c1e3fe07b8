"""Shared fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from casnet.data.settings import SimulateConfig
from casnet.data.simulate import simulate_galaxy


@pytest.fixture(scope="session")
def sim_config() -> SimulateConfig:
    """Default simulation settings (the demo's)."""
    return SimulateConfig()


@pytest.fixture(scope="session")
def clean_galaxy(sim_config) -> np.ndarray:
    """A bright, isolated simulated stamp that measures without flags (galaxy 3 of the demo)."""
    return simulate_galaxy(3, sim_config).image.astype(np.float64)


def _write_label_store(path, n: int, seed: int) -> np.ndarray:
    """A store of ``n`` random 60x60 stamps with learnable labels; returns the A labels.

    ``label_asymmetry`` = 3 x the stamp mean, ``label_concentration`` = 0.5 + that (one chunk).
    """
    from casnet.data.io.store import StoreWriter

    rng = np.random.default_rng(seed)
    images = rng.random((n, 60, 60)).astype(np.float32)
    labels = images.mean(axis=(1, 2)) * 3
    rows = [{"galaxy_id": f"g{seed}-{i}", "label_asymmetry": float(labels[i]),
             "label_concentration": float(0.5 + labels[i])} for i in range(n)]  # fmt: skip
    with StoreWriter(path, stamp_shape=(60, 60), chunk_size=max(n, 1)) as w:
        w.append(rows, {"image": images})
    return labels


@pytest.fixture(scope="session")
def label_store():
    """Writer of small training-ready stores: ``label_store(path, n, seed) -> A labels``."""
    return _write_label_store


#: dvc.lock of a test project: data/split and data/augmented as DVC outputs with known hashes
TEST_DVC_LOCK = (
    "schema: '2.0'\nstages:\n"
    "  split:\n    outs:\n    - path: data/split\n      hash: md5\n      md5: 11aa.dir\n"
    "  augment:\n    outs:\n    - path: data/augmented\n      hash: md5\n      md5: 22bb.dir\n"
)


def _commit_project(root) -> str:
    """Write TEST_DVC_LOCK in ``root``, make it a git repository with one commit; its sha."""
    import subprocess

    (root / "dvc.lock").write_text(TEST_DVC_LOCK)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "dvc.lock"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "lock"], cwd=root, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip


@pytest.fixture(scope="session")
def commit_project():
    """``commit_project(root) -> sha``: a git project whose dvc.lock names the test stores
    (lineage tags: data/split -> 11aa.dir, data/augmented -> 22bb.dir)."""
    return _commit_project


def _registered_project(root, arch, *, sizes=(48, 16, 16), epochs: int = 1,
                        clean: bool = True) -> tuple[dict, dict]:  # fmt: skip
    """Label stores under ``root``, both networks of ``arch`` trained on them for ``epochs``
    and registered, and ``casnet@champion`` around them (cleaning raw stamps when ``clean``),
    in ``root``'s own store (no MLFLOW_* variable seen). Returns (role -> store, target ->
    TrainResult)."""
    import os

    from casnet.data.settings import CleanConfig
    from casnet.networks import registry
    from casnet.networks.dataset import TARGETS
    from casnet.networks.settings import SearchConfig
    from casnet.networks.train import train

    data = {"train": root / "data/augmented", "val": root / "data/split/val",
            "test": root / "data/split/test"}  # fmt: skip
    for seed, (role, n) in enumerate(zip(data, sizes, strict=True)):
        _write_label_store(data[role], n, seed)
    results = {}
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
            mp.delenv(key)
        mp.setenv("CASNET_ROOT", str(root))
        for target in TARGETS:
            r = train(target, arch, **data, budget=SearchConfig(max_epochs=epochs, seed=0),
                      root=root, verbose=0, figure=False)  # fmt: skip
            registry.register_network(r.run_id, r.model_uri, target, val_store=data["val"],
                                      val_rmse=r.metrics["final_val_rmse"], root=root)  # fmt: skip
            results[target] = r
        registry.register_combined(root=root, clean=CleanConfig() if clean else None)
    return data, results


@pytest.fixture(scope="session")
def registered_project():
    """``registered_project(root, arch, sizes=, epochs=, clean=) -> (stores, results)``: both
    networks trained on label stores and registered, with ``casnet@champion``."""
    return _registered_project


#: a network small enough to build and save in a second (the tests of models, not of training)
TINY_ARCH = {"blocks": 1, "conv_per_block": 1, "filters": 4, "dense_layers": 1, "dense_units": 8,
             "dropout": 0.25, "optimizer": "adam", "learning_rate": 0.01,
             "batch_size": 16}  # fmt: skip


@pytest.fixture(scope="session")
def tiny_combined_model(tmp_path_factory):
    """A combined model saved locally around two small untrained networks (seeded; no cleaning,
    no out-of-distribution fit). Read-only: copy it before writing into it."""
    import keras
    import mlflow

    from casnet.core.layout import TARGETS
    from casnet.networks.architecture import build_model
    from casnet.networks.mlmodel import network_signature
    from casnet.networks.registry import CasnetModel
    from casnet.networks.settings import ArchitectureConfig

    root = tmp_path_factory.mktemp("tiny-model")
    artifacts = {}
    for i, target in enumerate(TARGETS):
        keras.utils.set_random_seed(i)
        artifacts[target] = str(root / target)
        # requirements given: their inference would take most of the fixture's time
        mlflow.keras.save_model(build_model(ArchitectureConfig(**TINY_ARCH)), artifacts[target],
                                signature=network_signature(),
                                pip_requirements=["mlflow"])  # fmt: skip
    mlflow.pyfunc.save_model(str(root / "casnet"), python_model=CasnetModel(),
                             artifacts=artifacts, pip_requirements=["mlflow"])  # fmt: skip
    return root / "casnet"
