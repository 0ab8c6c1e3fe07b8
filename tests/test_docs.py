"""The documentation (issue 31): built strictly (a warning is an error), its reference generated
from the code, and a README short enough to read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_the_docs_build_strictly_with_every_page(site):
    for page in ("index.html", "getting-started/index.html", "guide/method/index.html",
                 "guide/api/index.html", "reference/cli/index.html",
                 "reference/parameters/index.html", "reference/columns/index.html",
                 "reference/flags/index.html", "reference/api/index.html",
                 "results/science/index.html", "changelog/index.html"):  # fmt: skip
        assert (site / page).is_file(), page
    # the committed reports are published beside the guides that link them
    assert (site / "reports" / "real" / "figures" / "real_scatter.png").is_file()


def test_the_reference_is_generated_from_the_code(site):
    import typer

    from casnet.cli import app
    from casnet.params import Params

    cli = (site / "reference" / "cli" / "index.html").read_text()
    for name in typer.main.get_command(app).commands:
        assert f"casnet {name}" in cli, name
    assert "--with-conventional" in cli  # an option deep in a command
    params = (site / "reference" / "parameters" / "index.html").read_text()
    for section in Params.model_fields:
        assert section in params, section
    assert "lr_patience" in params and "train_epochs" in params
    flags = (site / "reference" / "flags" / "index.html").read_text()
    assert "OUT_OF_DISTRIBUTION" in flags and "UNPHYSICAL" in flags
    api = (site / "reference" / "api" / "index.html").read_text()
    assert "load_model" in api and "predict" in api


def test_the_readme_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for part in ("## The two commands", "## Quick start 1", "## Quick start 2", "## Quick start 3",
                 "## Cite", "## Licence"):  # fmt: skip
        assert part in text, part


def test_the_tutorial_notebook_runs(tmp_path):
    """docs/tutorial.ipynb executed from start to end: measure, predict, compare with the truth
    on simulated stamps, and a diagnostic figure."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(ROOT / "docs" / "tutorial.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    table = next(o for c in nb.cells[::-1] if c.cell_type == "code" for o in c.outputs
                 if "RMSE vs truth" in str(o.get("data", {}).get("text/plain", "")))  # fmt: skip
    assert "network" in table["data"]["text/plain"]
    assert (tmp_path / "tutorial_diagnostic.png").stat().st_size > 20_000
