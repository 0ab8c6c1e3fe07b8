"""The project's own files install everything, consistently."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


#: the extras a full installation holds (``dev`` adds the tools of the tests and docs)
EXTRAS = ("sim", "networks", "pipeline")


def _name(dep: str) -> str:
    return dep.split(";")[0].split(">")[0].split("<")[0].split("[")[0].strip()


def _pins(*groups: str) -> list[str]:
    """The version-pinned requirements of the core and ``groups`` (self-references left out)."""
    project = _pyproject()["project"]
    deps = list(project["dependencies"])
    for group in groups:
        deps += [d for d in project["optional-dependencies"][group] if _name(d) != "casnet"]
    return deps


def test_conda_yaml_has_the_same_pins_as_pyproject():
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    pins = [p for p in pip_section if not p.startswith("-e")]
    assert sorted(pins) == sorted(_pins(*EXTRAS))


def test_every_dependency_has_a_version_range():
    for dep in _pins(*EXTRAS, "dev"):
        assert ">=" in dep and "<" in dep, dep


def test_required_dependencies_are_declared():
    names = {_name(d) for d in _pins(*EXTRAS)}
    required = {
        "tensorflow-cpu", "tensorflow", "keras", "keras-tuner", "mlflow", "dvc", "numpy", "scipy",
        "astropy", "photutils", "pandas", "pyarrow", "scikit-learn", "galsim", "dask", "zarr",
        "matplotlib", "tqdm", "pydantic", "typer",
        # Keras Tuner 1.4.8 imports tensorboard in every trial (design guide sec. 7)
        "tensorboard",
    }  # fmt: skip
    assert required <= names


def test_measuring_needs_neither_tensorflow_nor_mlflow_nor_dvc():
    """Issue 31: ``pip install casnet`` (the core) measures; the networks, the pipeline and the
    simulator are extras. The core names none of them, every extra resolves to the full set,
    tensorflow-cpu (Linux wheels only) is marked for Linux with tensorflow elsewhere (macOS), and
    measuring, from Python and from the command line, imports none of them (they are made
    unimportable here)."""
    import subprocess
    import sys

    project = _pyproject()["project"]
    heavy = {"tensorflow-cpu", "tensorflow", "keras", "keras-tuner", "mlflow", "dvc", "galsim",
             "tensorboard", "scikit-learn"}  # fmt: skip
    assert not heavy & {_name(d) for d in project["dependencies"]}
    extras = project["optional-dependencies"]
    assert "casnet[sim,networks,pipeline]" in extras["all"] and "casnet[all]" in extras["dev"]
    tf = {d.split(";")[0]: d.split(";")[1].strip() for d in extras["networks"] if ";" in d}
    assert tf == {"tensorflow-cpu>=2.21,<2.22": "sys_platform == 'linux'",
                  "tensorflow>=2.21,<2.22": "sys_platform != 'linux'"}  # fmt: skip
    code = """
import sys
for name in ("tensorflow", "keras", "keras_tuner", "mlflow", "dvc", "galsim", "sklearn",
             "tensorboard"):
    sys.modules[name] = None  # importing it raises ImportError
import numpy as np
from astropy.io import fits
import casnet
yy, xx = np.mgrid[:81, :81]
image = np.exp(-((xx - 40.0) ** 2 + (yy - 40.0) ** 2) / 20.0)
image += np.random.default_rng(1).normal(0.0, 0.01, image.shape)
m = casnet.measure(image)
assert m.flag == 0 and 1.5 < m.concentration < 3.5, m
fits.writeto(sys.argv[1], image.astype("float32"))
from casnet.cli import main
sys.argv = ["casnet", "measure", sys.argv[1], "--out", sys.argv[2]]
main()
"""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-c", code, f"{tmp}/g.fits", f"{tmp}/g.csv"],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        text = Path(f"{tmp}/g.csv").read_text()
        assert "concentration" in text and "g.fits" in text  # the galaxy's row


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


def test_a_command_that_needs_an_extra_says_which():
    """Without the networks extra, ``casnet predict`` says what to install (no traceback)."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['mlflow'] = None; sys.modules['tensorflow'] = None; "
            "from casnet.cli import main; sys.argv = ['casnet', 'predict', sys.argv[1], "
            "'--model', 'pretrained', '--out', sys.argv[2]]; main()")  # fmt: skip
    stamps = ROOT / "tests" / "data" / "faint_clumpy_unflagged.fits"
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-c", code, str(stamps), f"{tmp}/c.csv"],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert "needs casnet's 'networks' extra" in done.stderr
    assert "pip install 'casnet[networks]'" in done.stderr and "Traceback" not in done.stderr


def test_the_demos_mlflow_run_launchers_are_named_in_casnets_experiments():
    """Issue 31: each ``mlflow run`` of the demo left a launcher run with a random name in the
    "Default" experiment."""
    import re

    from casnet.core.layout import EXPERIMENTS

    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    launches = [line for line in text.splitlines() if "$(BIN)/mlflow run ." in line]
    assert len(launches) >= 5
    for line in launches:
        entry = re.search(r"-e (\w+)", line).group(1)
        assert f"--experiment-name {EXPERIMENTS[entry]}" in line, line
        assert f'--run-name "mlflow run -e {entry}' in line, line
