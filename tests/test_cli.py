"""The casnet command line: measure, stamps, params, benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from typer.testing import CliRunner

from casnet.cli import app
from casnet.core.errors import EXIT_BAD_INPUT
from casnet.data.io.fits import write_image
from casnet.morphology import COLUMNS, Flag

runner = CliRunner()


@pytest.fixture(scope="module")
def stamp_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("stamps")
    result = runner.invoke(app, ["stamps", "--n", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_stamps_writes_fits_with_truth(stamp_dir):
    files = sorted(stamp_dir.glob("*.fits"))
    assert [f.name for f in files] == [f"stamp_{i:05d}.fits" for i in range(3)]
    with fits.open(files[0]) as hdul:
        assert hdul[0].data.shape == (101, 101)
        assert hdul["TRUTH"].data.shape == (101, 101)
        assert hdul[0].header["INDEX"] == 0


def test_measure_table_on_terminal(stamp_dir):
    result = runner.invoke(app, ["measure", str(stamp_dir)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["source", "concentration"]
    assert len(lines) == 2 + 3  # header, rule, one row per stamp


def test_measure_csv_has_every_column_and_bad_files_flagged(stamp_dir, tmp_path):
    bad = tmp_path / "corrupt.fits"
    bad.write_bytes(b"not a fits file at all")
    out = tmp_path / "m.csv"
    result = runner.invoke(
        app, ["measure", str(stamp_dir), str(bad), "--format", "csv", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    table = Table.read(out, format="ascii.csv")
    assert len(table) == 4
    assert set(COLUMNS) <= set(table.colnames)
    row = table[table["source"] == str(bad)][0]
    assert row["flag"] == int(Flag.BAD_INPUT)
    assert "not a readable FITS" in row["flag_reasons"]


def test_measure_json_and_fits(stamp_dir, tmp_path):
    result = runner.invoke(app, ["measure", str(stamp_dir), "--format", "json"])
    rows = json.loads(result.stdout)
    assert len(rows) == 3 and "asymmetry" in rows[0]
    out = tmp_path / "m.fits"
    result = runner.invoke(app, ["measure", str(stamp_dir), "-f", "fits", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(Table.read(out)) == 3


def test_measure_agrees_with_the_library(stamp_dir):
    from casnet.data.io.fits import read_image
    from casnet.morphology import measure

    f = sorted(stamp_dir.glob("*.fits"))[0]
    rows = json.loads(runner.invoke(app, ["measure", str(f), "--format", "json"]).stdout)
    direct = measure(read_image(f)[0])
    assert rows[0]["concentration"] == pytest.approx(direct.concentration, rel=1e-12)


def test_single_unreadable_file_exits_nonzero_with_one_line(tmp_path):
    bad = tmp_path / "broken.fits"
    bad.write_bytes(b"\x00\x01garbage")
    result = runner.invoke(app, ["measure", str(bad)])
    assert result.exit_code != 0
    err = result.stderr.strip().splitlines()
    assert len(err) == 1
    assert str(bad) in err[0] and err[0].startswith("casnet: error:")


def test_bad_format_and_missing_out(stamp_dir):
    assert runner.invoke(app, ["measure", str(stamp_dir), "--format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["measure", str(stamp_dir), "--format", "fits"]).exit_code == 2


def test_hdu_option_selects_truth(stamp_dir):
    f = sorted(stamp_dir.glob("*.fits"))[0]
    res = runner.invoke(app, ["measure", str(f), "--hdu", "TRUTH", "--format", "json"])
    assert res.exit_code == 0, res.output


def test_file_without_image_data_is_flagged_in_batch(tmp_path):
    empty = tmp_path / "empty.fits"
    fits.PrimaryHDU().writeto(empty)
    good = tmp_path / "good.fits"
    write_image(good, np.random.default_rng(0).normal(size=(40, 40)))
    rows = json.loads(runner.invoke(app, ["measure", str(tmp_path), "-f", "json"]).stdout)
    by_name = {r["source"]: r for r in rows}
    assert "no HDU holds image data" in by_name[str(empty)]["flag_reasons"]
    assert by_name[str(good)]["flag"] & int(Flag.NO_SOURCE)  # pure noise: nothing detected


def test_bad_params_file_gives_clean_error(tmp_path, stamp_dir):
    bad = tmp_path / "params.yaml"
    bad.write_text("morphology:\n  eta: -1\n")
    # through the real console script: no traceback, exit 3 (bad configuration), the key named
    proc = subprocess.run(
        [sys.executable, "-c", "from casnet.cli import main; main()", "measure", str(stamp_dir),
         "--params", str(bad)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == EXIT_BAD_INPUT == 3
    assert "morphology.eta = -1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_params_command_prints_yaml():
    result = runner.invoke(app, ["params"])
    assert result.exit_code == 0
    assert "morphology:" in result.stdout and "eta: 0.2" in result.stdout


def test_benchmark_measure_prints_figures():
    result = runner.invoke(app, ["benchmark", "measure", "--n", "4", "--statmorph-n", "2"])
    assert result.exit_code == 0, result.output
    assert "ms/galaxy" in result.stdout
    assert "casnet conventional C+A" in result.stdout


def _console(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """The real console script (its exit statuses and messages, not CliRunner's)."""
    return subprocess.run([sys.executable, "-c", "from casnet.cli import main; main()", *args],
                          capture_output=True, text=True, check=False, cwd=cwd)  # fmt: skip


def test_exit_statuses_tell_usage_from_bad_input(tmp_path):
    """2: a wrong command line (click's status for an unknown option too); 3: an input or the
    configuration cannot be used; every one a one-line message, never a traceback."""
    unknown = _console("measure", "--no-such-option")
    assert unknown.returncode == 2
    refused = _console("stamps", "--out", str(tmp_path / "s"), "--n", "0")
    assert refused.returncode == 2 and "--n must be >= 1" in refused.stderr
    missing = _console("data", "split", "--in", str(tmp_path / "nowhere"), "--out",
                       str(tmp_path / "out"))  # fmt: skip
    assert missing.returncode == 3 and "split:" in missing.stderr
    for proc in (unknown, refused, missing):
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("option", ["--chunk-size", "--workers"])
def test_stage_options_are_validated_like_params(tmp_path, option):
    """``--chunk-size 0`` (once a traceback) and ``--workers -1`` go through the same validation
    as params.yaml: the key is named, exit 3."""
    proc = _console("data", "simulate", "--out", str(tmp_path / "sim"), "--n", "2", option,
                    "0" if option == "--chunk-size" else "-1", "--quiet")  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    key = "chunk_size = 0" if option == "--chunk-size" else "workers = -1"
    assert key in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "sim").exists()


def test_measure_to_a_missing_folder_fails_before_measuring(tmp_path, stamp_dir):
    proc = _console("measure", str(stamp_dir), "--format", "csv", "--out",
                    str(tmp_path / "nowhere" / "x.csv"))  # fmt: skip
    assert proc.returncode == 3 and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [
    ("benchmark", "measure", "--n", "-5"),
    ("benchmark", "measure", "--repeats", "0"),
    ("benchmark", "errors", "--n", "-5"),
    ("benchmark", "data", "--n", "0"),
    ("benchmark", "pipeline", "--workers", "1,x"),
    ("data", "simulate", "--n", "-5"),
    ("show", "nowhere", "--n", "-5"),
    ("tune", "--target", "asymmetry", "--max-trials", "0"),
])  # fmt: skip
def test_bad_option_values_end_in_one_line_not_a_traceback(tmp_path, args):
    """Every option value a command refuses ends with `casnet: error: ...` and status 2 (the
    command refused it) or 3 (the config validation did, naming the key)."""
    proc = _console(*args, cwd=tmp_path)
    assert proc.returncode in (2, 3), proc.stderr
    assert "casnet: error:" in proc.stderr and "Traceback" not in proc.stderr


def test_version_prints_the_installed_version():
    from casnet import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"casnet {__version__}"


def test_silenced_stderr_hides_cpp_writes_and_restores_the_descriptor(capfd):
    """TensorFlow 2.21 writes its load-time notices from C++ straight to fd 2, before
    TF_CPP_MIN_LOG_LEVEL is read: only the descriptor itself can be silenced."""
    from casnet.core.quiet import silenced_stderr

    with silenced_stderr():
        os.write(2, b"from C++\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_the_console_hides_tensorflows_cpp_log_lines():
    """Issue 31: the CLI sets TF_CPP_MIN_LOG_LEVEL before any command imports TensorFlow (its
    CPU-feature and oneDNN notices went to every user's stderr); a user's own value wins."""
    code = ("import casnet.cli, os, tensorflow; print(os.environ['TF_CPP_MIN_LOG_LEVEL']); "
            "print(os.environ['MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR'])")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300, check=True)  # fmt: skip
    assert done.stdout.split() == ["2", "false"]  # no MLflow artifact progress bars either
    assert "cpu_feature_guard" not in done.stderr and "oneDNN" not in done.stderr
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300, check=True)  # fmt: skip
    assert done.stdout.split()[0] == "0"


def test_show_draws_one_diagnostic_figure_per_fits_file(stamp_dir, tmp_path):
    """Issue 31: `casnet show` on FITS files (statmorph's make_figure): one PNG for one file, a
    folder of them for several; an unreadable file is reported, the others drawn, status 3."""
    files = sorted(stamp_dir.glob("*.fits"))
    one = tmp_path / "one.png"
    result = runner.invoke(app, ["show", str(files[0]), "--out", str(one)])
    assert result.exit_code == 0, result.output
    assert one.stat().st_size > 20_000
    (tmp_path / "bad.fits").write_text("not a FITS file")
    folder = tmp_path / "figs"
    result = runner.invoke(app, ["show", str(stamp_dir), str(tmp_path / "bad.fits"),
                                 "--out", str(folder)])  # fmt: skip
    assert result.exit_code == 3
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{f.stem}.png" for f in files)
    assert "not a readable FITS file" in result.output


def test_loading_the_model_code_prints_no_mlflow_type_hint_notice():
    """Issue 31: MLflow's notice about predict's type hints (raw ANSI escapes) reached every
    console that loaded a model; other warnings are still shown."""
    code = ("import warnings, casnet.networks.registry as r; "
            "assert warnings.showwarning is r._shown; warnings.warn('still shown')")  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300, check=True)  # fmt: skip
    assert "type hints" not in done.stderr and "\x1b[" not in done.stderr
    assert "still shown" in done.stderr
