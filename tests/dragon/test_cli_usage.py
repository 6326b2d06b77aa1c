"""Usage mistakes through the installed console script: exit 2, one line naming the problem, no traceback."""

from __future__ import annotations

import pytest
from console import run_dragon

MISTAKES = [
    # (arguments, words the one line must contain)
    (["train"], ["--data", "dragon train --help"]),
    (["recommend", "--nope"], ["--nope"]),
    (["--nope"], ["--nope"]),
    (["simulate", "--days", "0", "--out", "x.csv"], ["--days"]),
    (["serve", "--port", "notaport"], ["--port"]),
    (["batch", "--input", "a.csv", "--output", "b.csv", "--workers", "0"], ["--workers"]),
    (["models", "approve"], ["version"]),
    (["models", "nope"], ["nope"]),
]


@pytest.mark.parametrize("args, words", MISTAKES, ids=[" ".join(args) for args, _ in MISTAKES])
def test_usage_mistake_exits_2_with_one_line(tmp_path, args, words):
    result = run_dragon(*args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]


def test_no_command_prints_the_help_and_exits_2(tmp_path):
    result = run_dragon(cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "recommend" in result.stdout


@pytest.mark.parametrize(
    "command", ["train", "recommend", "whatif", "batch", "trial", "monitor", "pipeline train"]
)
def test_flags_take_no_value_and_json_says_what_it_prints(tmp_path, command):
    result = run_dragon(*command.split(), "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    help_text = " ".join(result.stdout.replace("│", " ").split())
    assert "--help Show this message and exit." in help_text  # not `--help <bool>`: a flag takes no value
    assert "<bool>" not in help_text and "list[" not in help_text
    if command != "pipeline train":
        assert "--json Print JSON on stdout instead of tables (for scripts):" in help_text


def test_an_error_is_one_line_on_a_narrow_terminal(tmp_path):
    """A state file that is not there is named as not found; the message stays one line at 60 columns
    (the terminal wraps it, not the program)."""
    result = run_dragon(
        "recommend", "--state", "no_such_state.csv", "--bundle", "b", cwd=tmp_path, COLUMNS="60"
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and len(result.stderr) > 60, result.stderr
    assert "no_such_state.csv: file not found" in result.stderr
