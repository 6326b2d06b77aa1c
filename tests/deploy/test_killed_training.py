"""A training stopped on its way: SIGTERM (SageMaker's StopTrainingJob, `kill`) ends its MLflow run as
FAILED and removes its scratch folder; a run and a scratch folder left by a process killed outright
(SIGKILL) are marked FAILED and removed by the plant's next training."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from dragon.registry import experiment_id
from dragon.settings import load_settings
from training.catalog import HOST_TAG, PID_TAG, record_training, scratch_folder


def a_dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def runs_by_status(settings, plant: str) -> dict[str, str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    runs = client.search_runs([experiment_id(settings, plant)])
    return {run.info.run_id: run.info.status for run in runs}


def test_the_next_training_fails_the_run_and_removes_the_scratch_of_a_killed_one(
    registry_home, trained_bundle, small_plant
):
    from mlflow import MlflowClient

    settings = load_settings()
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    dead = a_dead_pid()
    owner = {PID_TAG: str(dead), HOST_TAG: socket.gethostname()}
    killed = client.create_run(experiment_id(settings, small_plant.name), tags=owner).info.run_id
    left = settings.home / "scratch" / f"train-{dead}-abc"
    (left / "bundle").mkdir(parents=True)

    with scratch_folder(settings) as scratch:
        assert not left.exists(), "a dead training's scratch folder is removed"
        assert Path(scratch).name.startswith(f"train-{os.getpid()}-")
    result = record_training(settings, Path(trained_bundle))
    statuses = runs_by_status(settings, small_plant.name)
    assert statuses == {killed: "FAILED", result["run_id"]: "FINISHED"}
    assert "abandoned" in client.get_run(killed).data.tags["failure"]


SIGTERMED = """
import sys, time
from pathlib import Path
import training.catalog as catalog
from dragon.settings import load_settings

def slow_registration(*args, **kwargs):
    Path(sys.argv[2]).touch()
    time.sleep(120)

catalog.register_bundle = slow_registration
settings = load_settings()
with catalog.terminate_as_exit(), catalog.scratch_folder(settings) as scratch:
    Path(sys.argv[3]).write_text(scratch)
    catalog.record_training(settings, Path(sys.argv[1]))
"""


def test_sigterm_while_recording_fails_the_run_and_removes_the_scratch(
    registry_home, trained_bundle, small_plant, tmp_path
):
    marker, scratch_note = tmp_path / "recording", tmp_path / "scratch"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(SIGTERMED),
            str(trained_bundle),
            str(marker),
            str(scratch_note),
        ],
        env={**os.environ, "DRAGON_HOME": str(registry_home)},
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the child never reached the registration"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert list(runs_by_status(load_settings(), small_plant.name).values()) == ["FAILED"]
    assert not Path(scratch_note.read_text()).exists()
