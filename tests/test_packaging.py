"""The project's own files install everything, consistently."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_conda_yaml_has_the_same_pins_as_pyproject():
    deps = _pyproject()["project"]["dependencies"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    pins = [p for p in pip_section if not p.startswith("-e")]
    assert sorted(pins) == sorted(deps)


def test_every_dependency_has_a_version_range():
    for dep in _pyproject()["project"]["dependencies"]:
        assert ">=" in dep and "<" in dep, dep


def test_required_dependencies_are_declared():
    names = {
        d.split(">")[0].split("<")[0].split("[")[0].strip()
        for d in _pyproject()["project"]["dependencies"]
    }
    required = {
        "tensorflow-cpu", "keras", "keras-tuner", "mlflow", "dvc", "numpy", "scipy", "astropy",
        "photutils", "pandas", "pyarrow", "scikit-learn", "galsim", "dask", "zarr", "matplotlib",
        "tqdm", "pydantic", "typer",
        # Keras Tuner 1.4.8 imports tensorboard in every trial (design guide sec. 7)
        "tensorboard",
    }  # fmt: skip
    assert required <= names


def test_console_script_and_dev_extra():
    project = _pyproject()["project"]
    assert project["scripts"]["casnet"] == "casnet.cli:main"
    dev = {d.split(">")[0] for d in project["optional-dependencies"]["dev"]}
    assert {"pytest", "hypothesis", "statmorph"} <= dev


def test_top_level_layout():
    for name in ("MLproject", "dvc.yaml", "params.yaml", "conda.yaml", "README.md", "Makefile",
                 "pyproject.toml", ".ci/run", ".dvc/config", ".dvcignore", "src/casnet", "tests",
                 "data/README.md"):  # fmt: skip
        assert (ROOT / name).exists(), name


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first = text.index("## The two commands")
    assert text.index("make demo") > first and text.index("make test") > first
    assert "BENCHMARK_FIGURES" not in text, "benchmark placeholder left in the README"


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_mlproject_entries_call_the_cli():
    mlproject = yaml.safe_load((ROOT / "MLproject").read_text())
    assert mlproject["conda_env"] == "conda.yaml"
    for name, entry in mlproject["entry_points"].items():
        assert entry["command"].startswith("casnet "), name


def test_mlproject_commands_use_declared_parameters_and_real_options():
    """Each entry's {placeholders} are its parameters and each --flag exists on that command."""
    import re

    from typer.testing import CliRunner

    from casnet.cli import app

    mlproject = yaml.safe_load((ROOT / "MLproject").read_text())
    for name, entry in mlproject["entry_points"].items():
        command = " ".join(entry["command"].split())
        assert set(re.findall(r"{(\w+)}", command)) == set(entry.get("parameters", {})), name
        for part in command.split("&&"):
            words = part.split()
            sub = [w for w in words[1:] if not w.startswith(("-", "{"))][:2]
            help_text = CliRunner().invoke(app, [*sub, "--help"], terminal_width=200).output
            for flag in re.findall(r"(--[\w-]+)", part):
                assert flag in help_text or flag == "--promote-if", (name, flag)
    assert {"tune", "train", "predict"} <= set(mlproject["entry_points"])


def test_dvc_stages_call_the_cli_and_read_declared_params():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    from casnet.params import Params

    for name, stage in dvc["stages"].items():
        assert stage["cmd"].startswith("casnet "), name
        for p in stage.get("params", []):
            assert p.split(".")[0] in Params.model_fields, (name, p)


def test_licence_and_citation_say_the_same_as_pyproject():
    """Issue 31: a LICENSE file (pyproject's BSD-3-Clause, shipped in the wheel) and a
    CITATION.cff of this version that cites the paper the method follows."""
    project = _pyproject()["project"]
    assert project["license"] == "BSD-3-Clause" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "Neither the name" in text
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "BSD-3-Clause"
    assert cff["version"] == project["version"]
    (paper,) = cff["references"]
    assert paper["authors"][0]["family-names"] == "Tohill" and paper["year"] == 2021
    assert any("2012.09081" in i["value"] for i in paper["identifiers"])
