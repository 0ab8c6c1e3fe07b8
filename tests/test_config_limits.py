"""Configuration errors stay short and fast whatever the input (issue 28).

A 16 KB params.yaml of nested YAML aliases (the "billion laughs") once ran past 60 s at 3.5 GB, and
7 levels printed 40-74 MB of error text; a 50 MB unknown value was echoed whole. Aliases are now
refused when they are met, the file is read up to a size limit, and every value in a message is cut
to ~200 characters with its size said.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml

from casnet.core.config import (
    MAX_ERRORS,
    VALUE_LIMIT,
    override_from_strings,
    parse_yaml,
    short_repr,
)
from casnet.core.errors import EXIT_BAD_INPUT, CasnetConfigError
from casnet.networks.settings import SearchConfig
from casnet.params import MAX_PARAMS_BYTES, Params, load_params, parse_params

# An error message a person can read: one key's line with its value cut to VALUE_LIMIT characters,
# the allowed keys and the message header fit well under this.
SHORT = 1000


def _billion_laughs(levels: int, width: int = 10) -> str:
    """The classic alias bomb: level i is ``width`` aliases of level i - 1 (width**levels values),
    under a real section so that validation (not only parsing) would see the expansion."""
    lines = ["data:", f"  l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels + 1):
        lines.append(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_params_file_is_refused_by_the_cli(tmp_path):
    # through the real console script: 7 levels once printed 40-74 MB; the timeout is the old
    # "no answer" (a refusal takes as long as the import, a couple of seconds)
    bomb = tmp_path / "params.yaml"
    bomb.write_text(_billion_laughs(7))
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", "from casnet.cli import main; main()", "params", "--params",
         str(bomb)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == EXIT_BAD_INPUT == 3, proc.stderr[:SHORT]
    assert len(proc.stderr) < SHORT and proc.stdout == ""
    assert proc.stderr.count("\n") == 1  # one line
    assert str(bomb) in proc.stderr and "aliases" in proc.stderr and "line 3" in proc.stderr
    assert time.monotonic() - start < 60


def test_nine_level_alias_bomb_is_refused_at_once():
    # 10**9 values if expanded; the refusal comes at the first alias, before any expansion
    start = time.monotonic()
    with pytest.raises(CasnetConfigError, match=r"^params\.yaml: line 3: YAML aliases \(\*l0\)"):
        parse_yaml(_billion_laughs(9), source="params.yaml")
    assert time.monotonic() - start < 5  # generous: it is milliseconds


@pytest.mark.parametrize(
    "text",
    [
        "data:\n  input: &x [a.fits]\n  labels: *x\n",  # a plain alias
        "base: &b {eta: 0.3}\nmorphology:\n  <<: *b\n",  # a merge key is an alias too
        "data:\n  input: *undefined\n",  # an alias to nothing
    ],
)
def test_every_alias_in_a_params_file_is_refused(tmp_path, text):
    file = tmp_path / "params.yaml"
    file.write_text(text)
    with pytest.raises(CasnetConfigError, match="aliases") as err:
        load_params(file)
    assert str(err.value).startswith(f"{file}: line ")
    assert "\n" not in str(err.value)


def test_alias_in_a_command_line_override_is_refused():
    # --search / --set / science.set values are YAML too: a bomb fits on one command line
    with pytest.raises(CasnetConfigError, match=r"search \(--search\): filters = .*aliases"):
        override_from_strings(
            SearchConfig(), ["filters=[&a [8, 8], *a]"], source="search (--search)"
        )


def test_generated_science_params_have_no_aliases():
    # casnet science writes a params.yaml with yaml.safe_dump, which emits &id001/*id001 for an
    # object met twice: what it writes must stay readable by the alias-free reader
    from casnet.science.run import science_params

    text = yaml.safe_dump(science_params(Params()), sort_keys=False)
    assert parse_params(parse_yaml(text, source="science/params.yaml")) is not None


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path):
    file = tmp_path / "params.yaml"
    file.write_text("data: " + "[" * 100_000)
    with pytest.raises(CasnetConfigError, match="nested deeper than"):
        load_params(file)


def test_unknown_key_with_a_50_mb_value_gives_a_short_message():
    with pytest.raises(CasnetConfigError) as err:
        parse_params({"data": {"bogus": "x" * 50_000_000}})
    msg = str(err.value)
    assert len(msg) < SHORT
    assert "data.bogus = 'xxx" in msg and "... (50,000,000 characters)" in msg
    assert "unknown key" in msg and "n_galaxies" in msg  # still says what is allowed


def test_bad_value_of_1_mb_in_a_file_gives_a_short_message(tmp_path):
    file = tmp_path / "params.yaml"
    file.write_text(f"data:\n  n_galaxies: '{'9' * 1_000_000}'\n")  # under the size limit
    with pytest.raises(CasnetConfigError) as err:
        load_params(file)
    msg = str(err.value)
    assert len(msg) < SHORT
    assert "data.n_galaxies = '999" in msg and "(1,000,000 characters)" in msg


def test_huge_unknown_key_and_list_value_are_cut():
    with pytest.raises(CasnetConfigError) as err:
        parse_params({"data": {"k" * 1_000_000: 1}, "search": {"filters": list(range(10**6))}})
    msg = str(err.value)
    assert len(msg) < 2 * SHORT  # two errors
    assert "(1,000,005 characters)" in msg  # the key "data.kkk..."
    assert "(list of 1,000,000 items)" in msg


def test_many_errors_are_counted_not_listed():
    with pytest.raises(CasnetConfigError) as err:
        parse_params({"data": {f"bogus{i}": 1 for i in range(10_000)}})
    lines = str(err.value).splitlines()
    assert len(lines) == 1 + MAX_ERRORS + 1  # header, the first errors, the count of the rest
    assert lines[-1] == f"  ... and {10_000 - MAX_ERRORS:,} more errors"


def test_params_file_over_the_size_limit_is_refused_unread(tmp_path):
    file = tmp_path / "params.yaml"
    file.write_text("data:\n  bogus: '" + "x" * MAX_PARAMS_BYTES + "'\n")
    with pytest.raises(CasnetConfigError, match=f"at most {MAX_PARAMS_BYTES:,} bytes") as err:
        load_params(file)
    assert len(str(err.value)) < SHORT


def test_unreadable_params_file_and_huge_number_are_config_errors(tmp_path):
    with pytest.raises(CasnetConfigError, match="cannot read"):
        load_params(tmp_path)  # a folder
    file = tmp_path / "params.yaml"
    file.write_text(f"data:\n  n_galaxies: {'9' * 10_000}\n")  # past Python's int() limit
    with pytest.raises(CasnetConfigError, match="not valid YAML") as err:
        load_params(file)
    assert len(str(err.value)) < SHORT


def test_short_repr_keeps_short_values_and_says_the_size_of_long_ones():
    assert short_repr("abc") == "'abc'"
    assert short_repr([1, 2]) == "[1, 2]"
    assert short_repr(None) == "None"
    text = short_repr("y" * 10_000)
    assert text == repr("y" * VALUE_LIMIT) + "... (10,000 characters)"
    assert short_repr(list(range(5000))).endswith("... (list of 5,000 items)")
    assert len(short_repr({"a": list(range(10**6))})) < VALUE_LIMIT + 50
