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


@pytest.mark.parametrize("command", ["train", "recommend", "whatif", "batch", "trial", "monitor"])
def test_json_flags_say_what_they_print_and_take_no_value(tmp_path, command):
    result = run_dragon(command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    help_text = " ".join(result.stdout.replace("│", " ").split())
    assert "--json Print JSON on stdout instead of tables (for scripts):" in help_text
