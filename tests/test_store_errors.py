"""A damaged, missing or mistyped MLflow store, and models that are not what was asked (issue 19,
item 4): one-line errors with their own exit status, and a read-only command never creates a
store."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from casnet.cli import app
from casnet.core.errors import EXIT_STORE, CasnetInputError, CasnetStoreError, exit_status
from casnet.networks import registry
from casnet.networks.settings import ArchitectureConfig

ARCH = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1, dense_units=8,
                          dropout=0.25, optimizer="adam", learning_rate=0.01,
                          batch_size=16)  # fmt: skip


@pytest.fixture
def damaged(tmp_path, monkeypatch):
    """A project whose mlflow.db is a truncated copy of nothing (not a database)."""
    (tmp_path / "params.yaml").write_text("{}\n")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "mlflow.db").write_bytes(b"SQLite format 3\x00" + b"\x07" * 300)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CASNET_ROOT", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("args", [["pull", "models:/casnet@champion"],
                                  ["predict", "x.fits", "--out", "x.parquet"],
                                  ["links"]])  # fmt: skip
def test_a_damaged_store_is_reported_as_such(damaged, args):
    result = CliRunner().invoke(app, [*args[:1], *args[1:]], catch_exceptions=True)
    assert isinstance(result.exception, CasnetStoreError), result.output
    assert "not a readable MLflow store" in str(result.exception)
    assert exit_status(result.exception) == EXIT_STORE


def test_the_command_line_says_it_in_one_line_with_its_exit_status(damaged):
    proc = subprocess.run([sys.executable, "-m", "casnet.cli", "pull", "models:/casnet@champion"],
                          capture_output=True, text=True, cwd=damaged, check=False)  # fmt: skip
    assert proc.returncode == EXIT_STORE
    errors = [line for line in proc.stderr.splitlines() if line.startswith("casnet: error:")]
    assert len(errors) == 1 and "mlflow.db is not a readable MLflow store" in errors[0]
    assert "Traceback" not in proc.stderr


def test_links_with_no_store_exits_with_the_store_status(tmp_path, monkeypatch):
    """The README's exit-status table: a missing store is 4 for every command that reads one
    (``casnet links`` said 3, issue 28); none is created."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CASNET_ROOT", str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "casnet.cli", "links"], capture_output=True,
                          text=True, cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == EXIT_STORE, proc.stderr
    assert proc.stderr.startswith("casnet: error: no MLflow store at sqlite:///")
    assert not (tmp_path / "mlflow.db").exists()


def test_a_mistyped_tracking_uri_creates_nothing(tmp_path, monkeypatch):
    """pull says there is no store; predict says so too and scores with the pretrained default
    (its documented fallback); neither creates one."""
    from astropy.io import fits

    wrong = tmp_path / "mlfow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{wrong}")
    monkeypatch.setenv("CASNET_ROOT", str(tmp_path))
    result = CliRunner().invoke(app, ["pull", "models:/casnet@champion", "--dest",
                                      str(tmp_path / "m")])  # fmt: skip
    assert isinstance(result.exception, CasnetStoreError), result.output
    assert "MLFLOW_TRACKING_URI" in str(result.exception)
    assert not (tmp_path / "m").exists()
    fits.PrimaryHDU(np.ones((64, 64), np.float32)).writeto(tmp_path / "x.fits")
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "x.fits"), "--out",
                                      str(tmp_path / "x.csv")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"no models:/casnet@champion in sqlite:///{wrong}" in result.output
    assert not wrong.exists()


@pytest.fixture(scope="module")
def project(tmp_path_factory, registered_project):
    root = tmp_path_factory.mktemp("store")
    registered_project(root, ARCH)
    return root


def test_a_single_network_or_a_folder_that_is_no_model_is_refused(project, tmp_path,
                                                                  monkeypatch):  # fmt: skip
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(CasnetInputError, match="single network"):
        registry.load("models:/casnet-asymmetry@champion", root=project)
    with pytest.raises(CasnetInputError, match="not an MLflow model folder"):
        registry.load(str(tmp_path), root=project)
    with pytest.raises(CasnetInputError, match="cannot load"):
        registry.load("models:/casnet@nosuchalias", root=project)


def test_a_version_whose_artifacts_are_gone_is_a_store_error(tmp_path, monkeypatch,
                                                             registered_project):  # fmt: skip
    # a project of its own: the store records its artifacts' absolute paths
    root = tmp_path / "gone"
    root.mkdir()
    registered_project(root, ARCH)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.rmtree(root / "mlartifacts")
    with pytest.raises(CasnetStoreError, match="artifacts"):
        registry.pull("models:/casnet@champion", tmp_path / "m", root=root)
    with pytest.raises(CasnetStoreError, match="artifacts") as info:
        registry.load("models:/casnet@champion", root=root)
    # named by the URI given, not by the temporary folder it was being downloaded to
    assert str(info.value).startswith("models:/casnet@champion ")
    assert "casnet-model-" not in str(info.value), info.value
