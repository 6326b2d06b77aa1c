"""`dragon check` as a user runs it: the installed console script, its exit codes and messages."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
from console import run_dragon


def shipped_plant_text() -> str:
    return resources.files("dragon.plants").joinpath("yet_dragon.toml").read_text()


def test_valid_spec_exits_0(tmp_path):
    result = run_dragon("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "plant spec ok" in result.stdout and "oxidation_1 -> oxidation_2" in result.stdout


def test_spec_with_three_mistakes_exits_2_naming_all_three(tmp_path):
    text = shipped_plant_text()
    mistakes = [
        ('"ox1_temperature", "ox1_offgas_o2", "oxidation_ph"', '"ox1_temperature", "ox1_offgas_o2", "ph"'),
        ("bounds = [6.8, 9.4]\n", ""),
        ('model = "concentration"', 'model = "concentrator"'),
    ]
    for old, new in mistakes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    plant = tmp_path / "bad.toml"
    plant.write_text(text)
    result = run_dragon("check", "--plant", str(plant), cwd=tmp_path)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())  # rich may wrap long lines
    assert "bad.toml" in message and "3 problem(s)" in message
    assert "[models.oxidation_1] features: unknown tag or derived feature 'ph'" in message
    assert "[tags.oxidation_ph] bounds: a setpoint needs bounds" in message
    assert "unknown model 'concentrator'" in message
    assert "Traceback" not in result.stderr


def test_missing_plant_or_data_file_exits_2_with_a_message(tmp_path):
    result = run_dragon("check", "--plant", "nowhere.toml", cwd=tmp_path)
    assert result.returncode == 2 and "nowhere.toml" in result.stderr and "not found" in result.stderr
    result = run_dragon("check", "--data", "absent.csv", cwd=tmp_path)
    assert result.returncode == 2 and "absent.csv" in result.stderr and "Traceback" not in result.stderr


def test_check_with_data_prints_the_quality_report(tmp_path):
    from dragon.spec import load_plant

    spec = load_plant()
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=n, freq="5min", tz="UTC")})
    for name, tag in spec.tags.items():
        low, high = tag.bounds or tag.valid
        frame[name] = (low + high) / 2 + rng.normal(0, (high - low) / 100, n)
    frame.loc[10, "yield"] = 101.0  # valid [85, 100]
    frame["episode"] = "normal"
    data = tmp_path / "history.csv"
    frame.to_csv(data, index=False)
    result = run_dragon("check", "--data", str(data), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "data quality" in result.stdout and "history.csv" in result.stdout
    assert "yield" in result.stdout and "outside valid range" in result.stdout and "399" in result.stdout
    assert "| 11 " in result.stdout.replace("│", "|")  # the 11th data row: counted from 1, header not a row
    assert result.stdout.count("episode") == 1 and "(ignored): episode" in result.stdout
