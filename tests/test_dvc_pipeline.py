"""`dvc repro` end to end at tiny N, in a throw-away git copy of the project.

The copy holds the project's own files (those git tracks, plus new files git would track), with
params.yaml shrunk to a few dozen galaxies run in-process. The ``casnet`` and ``dvc`` commands
come from this test's virtual environment; ``casnet`` finds the copy's params.yaml from its
working directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent  # not resolved: a venv's python is a symlink
STAGES = ["source", "clean", "measure", "select", "split", "augment"]
OUTPUTS = [
    "data/raw",
    "data/cleaned",
    "data/measured.parquet",
    "data/selected",
    "data/split/train",
    "data/split/val",
    "data/split/test",
    "data/augmented",
    "metrics/select.json",
    "metrics/split.json",
    "metrics/augment.json",
    "plots/mag_size.png",
    "plots/grid_high_c.png",
    "plots/grid_high_a.png",
    "plots/augment_distributions.png",
]
#: DVC's report lines
RAN = re.compile(r"Running stage '([^']+)'")
SKIPPED = re.compile(r"Stage '([^']+)' didn't change, skipping")


def _project_files() -> list[str]:
    """What a fresh clone (plus work in progress) holds: git's tracked and trackable files."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=PROJECT, check=True, capture_output=True, timeout=60,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return []
    return [f for f in out.decode().split("\0") if f and (PROJECT / f).is_file()]


def _copy_project(dest: Path) -> None:
    files = _project_files()
    if files:
        for rel in files:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / rel, dest / rel)
    else:  # not a git checkout: the tree without environments, data and results
        ignore = shutil.ignore_patterns(".venv", ".git", "mlflow.db", "mlartifacts", "mlruns",
                                        "__pycache__", ".*_cache")  # fmt: skip
        shutil.copytree(PROJECT, dest, ignore=ignore, dirs_exist_ok=True)
        for name in ("metrics", "plots"):
            shutil.rmtree(dest / name, ignore_errors=True)
        for item in (dest / "data").iterdir():
            if item.name not in ("README.md", ".gitkeep"):
                shutil.rmtree(item) if item.is_dir() else item.unlink()


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k != "CASNET_ROOT" and not k.startswith("GIT_")}  # fmt: skip
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["DVC_SITE_CACHE_DIR"] = str(tmp / "dvc-site-cache")  # keep DVC's index out of /var/tmp
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    res = subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, f"{' '.join(args)} failed ({res.returncode}):\n{res.stdout}"
    return res.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The project copy, committed, after a first `dvc repro` (its output is returned too)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    tmp = tmp_path_factory.mktemp("dvc")
    root = tmp / "project"
    root.mkdir()
    _copy_project(root)
    (root / "dvc.lock").unlink(missing_ok=True)  # from scratch: every stage must run
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"]["n_galaxies"] = 24
    params["dask"]["workers"] = 0
    params["store"]["chunk_size"] = 8
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = _env(tmp)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "tests@casnet.invalid"],  # CI may have no identity
        ["git", "config", "user.name", "casnet tests"],
        ["git", "config", "commit.gpgsign", "false"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "project copy"],
    ):
        _run(cmd, root, env)
    first = _run(["dvc", "repro"], root, env)
    return root, env, first


def test_repro_runs_every_stage_once(repo):
    _, _, out = repo
    assert RAN.findall(out) == STAGES  # in pipeline order


def test_repro_writes_every_output(repo):
    root, _, _ = repo
    missing = [p for p in OUTPUTS if not (root / p).exists()]
    assert not missing
    # and everything dvc.yaml declares (outs, metrics, plots) whatever the list above says
    declared = []
    for stage in yaml.safe_load((root / "dvc.yaml").read_text())["stages"].values():
        for key in ("outs", "metrics", "plots"):
            declared += [next(iter(e)) if isinstance(e, dict) else e for e in stage.get(key, [])]
    assert declared
    assert [p for p in declared if not (root / p).exists()] == []
    for split in ("train", "val", "test"):
        assert (root / "data/split" / split / "catalog.parquet").is_file()
    assert (root / "plots/mag_size.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_show_lists_the_stage_metrics(repo):
    root, env, _ = repo
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], root, env))
    files = {path: entry["data"] for path, entry in shown[""]["data"].items()}
    assert set(files) == {"metrics/select.json", "metrics/split.json", "metrics/augment.json"}
    select, split, augment = (files[f"metrics/{s}.json"] for s in ("select", "split", "augment"))
    assert select["n_in"] == 24
    assert split["n"] == select["n_out"] == split["train"] + split["val"] + split["test"]
    assert augment["n_before"] == split["train"]
    assert augment["n_after"] >= augment["n_before"]


def test_second_repro_has_nothing_to_do(repo):
    root, env, _ = repo
    out = _run(["dvc", "repro"], root, env)
    assert RAN.findall(out) == []
    assert SKIPPED.findall(out) == STAGES


def test_exp_run_reruns_only_what_depends_on_the_changed_parameter(repo):
    root, env, _ = repo
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-q", "-m", "first repro"], root, env)
    out = _run(["dvc", "exp", "run", "-S", "clean.k_sigma=5"], root, env)
    assert SKIPPED.findall(out) == ["source"]
    assert RAN.findall(out) == STAGES[1:]  # clean and everything downstream of it
    assert yaml.safe_load((root / "params.yaml").read_text())["clean"]["k_sigma"] == 5
