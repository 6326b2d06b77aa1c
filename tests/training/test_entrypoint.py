"""The SageMaker `train` entry point against a temporary /opt/ml tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from dragon.bundle import load_bundle
from dragon.errors import BundleError


def _opt_ml(tmp_path, history, plant_path):
    base = tmp_path / "opt" / "ml"
    channel = base / "input" / "data" / "train"
    channel.mkdir(parents=True)
    shutil.copy(history, channel / history.name)
    shutil.copy(history.with_name("history.truth.parquet"), channel / "history.truth.parquet")
    config = base / "input" / "config"
    config.mkdir(parents=True)
    # SageMaker passes hyperparameters as strings; the plant spec travels as TOML text.
    (config / "hyperparameters.json").write_text(
        json.dumps({"plant": json.dumps(plant_path.read_text()), "seed": "3"})
    )
    return base


def _run_train(base):
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
    return subprocess.run(
        [sys.executable, "-m", "training.entrypoint"], env=env, capture_output=True, text=True, timeout=300
    )


def test_train_writes_a_bundle_that_verifies_and_refuses_tampering(tmp_path, small_history, small_plant_path):
    base = _opt_ml(tmp_path, small_history, small_plant_path)
    result = _run_train(base)
    assert result.returncode == 0, result.stderr[-2000:]
    bundle = load_bundle(base / "model")
    assert set(bundle.gams) == {"oxidation_1", "oxidation_2", "concentration", "yield"}
    assert (base / "output" / "data" / "summary.json").is_file()
    assert not (base / "output" / "failure").exists()

    metrics = base / "model" / "metrics.json"
    metrics.write_bytes(metrics.read_bytes().replace(b"{", b"[", 1))
    with pytest.raises(BundleError):
        load_bundle(base / "model")


def test_train_without_data_writes_the_failure_reason(tmp_path):
    base = tmp_path / "opt" / "ml"
    (base / "input" / "data" / "train").mkdir(parents=True)
    result = _run_train(base)
    assert result.returncode == 2
    failure = (base / "output" / "failure").read_text()
    assert "no .csv or .parquet history" in failure
    assert len(failure) <= 1024
