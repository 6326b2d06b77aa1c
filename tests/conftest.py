"""Fixtures shared by every package's tests: a small plant history and a real trained bundle.

The bundle is trained once per test session and shared across pytest-xdist workers
(file lock + a folder beside the workers' temp dirs), so each package's tests use a
real bundle without paying for the training more than once.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")

SMALL_DAYS = 24
SMALL_SEED = 7
SAMPLE_MINUTES = 5.0

# The default plant, trained on little data: 5-minute samples averaged to 10 minutes,
# with a shorter steady-state window so enough rows survive.
SMALL_PLANT_OVERRIDES = """
[steady_state]
window_minutes = 30
hold_minutes = 0

[training]
resample_minutes = 10
holdout_fraction = 0.25
min_rows = 100
"""


def small_plant_text() -> str:
    """The default plant's TOML with its [steady_state] and [training] tables replaced and no [quality]
    floors (they are set for months of minute history, not for this small one)."""
    import re
    from importlib import resources

    text = resources.files("dragon.plants").joinpath("yet_dragon.toml").read_text()
    without = re.sub(r"(?m)^\[(steady_state|training|quality)\]\n(?:(?!\[).*\n?)*", "", text)
    return without + SMALL_PLANT_OVERRIDES


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    """A folder shared by all xdist workers of this session."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    path = root / "shared"
    path.mkdir(exist_ok=True)
    return path


def _once(shared: Path, name: str, build) -> Path:
    """Build `name` in the shared folder once across workers."""
    target = shared / name
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / f"{name}.done").exists():
            build(target)
            (shared / f"{name}.done").touch()
    return target


@pytest.fixture(scope="session")
def small_plant_path(shared_dir) -> Path:
    path = shared_dir / "small_plant.toml"
    path.write_text(small_plant_text())
    return path


@pytest.fixture(scope="session")
def small_plant(small_plant_path):
    from dragon.spec import load_plant

    return load_plant(small_plant_path)


@pytest.fixture(scope="session")
def small_history(shared_dir) -> Path:
    """A simulated history (parquet) with its truth file beside it."""

    def build(target: Path) -> None:
        from dragon.simulator import write_history

        target.mkdir()
        write_history(
            days=SMALL_DAYS, seed=SMALL_SEED, out=target / "history.parquet", sample_minutes=SAMPLE_MINUTES
        )

    return _once(shared_dir, "history", build) / "history.parquet"


@pytest.fixture(scope="session")
def trained_bundle(shared_dir, small_history, small_plant):
    """A real bundle trained on the small history (no registry)."""

    def build(target: Path) -> None:
        from training.pipeline import train_bundle

        outcome = train_bundle([small_history], small_plant, target / "bundle", target / "report")
        (target / "summary.json").write_text(json.dumps(outcome.summary, default=float))

    return _once(shared_dir, "trained", build) / "bundle"


@pytest.fixture(scope="session")
def loaded_bundle(trained_bundle):
    from dragon.bundle import load_bundle

    return load_bundle(trained_bundle)


@pytest.fixture()
def dragon_home(tmp_path, monkeypatch) -> Path:
    """An empty DRAGON_HOME (MLflow SQLite store, artifacts, events) per test."""
    home = tmp_path / "dragon-home"
    monkeypatch.setenv("DRAGON_HOME", str(home))
    monkeypatch.delenv("DRAGON_TRACKING_URI", raising=False)
    return home


# The second test plant (tests/plants/mini_reactor): other tags, a chain where one model feeds two,
# a ppm limit on a noisy analyser, a production quantity, and its simulator as a plug-in.
MINI_REACTOR = Path(__file__).parent / "plants" / "mini_reactor" / "plant.toml"
MINI_REACTOR_DAYS = 20
MINI_REACTOR_SEED = 1


@pytest.fixture(scope="session")
def mini_reactor():
    from dragon.spec import load_plant

    return load_plant(MINI_REACTOR)


@pytest.fixture(scope="session")
def mini_reactor_history(shared_dir, mini_reactor) -> Path:
    """20 days of the mini reactor under its operators (with step tests), recorded through the plug-in."""

    def build(target: Path) -> None:
        from dragon.simulator.protocol import load_simulator, record_history

        simulator = load_simulator(mini_reactor)(
            mini_reactor, days=MINI_REACTOR_DAYS, seed=MINI_REACTOR_SEED, step_tests=True
        )
        target.mkdir()
        record_history(simulator, MINI_REACTOR_DAYS).measured.to_parquet(target / "history.parquet")

    return _once(shared_dir, "mini-reactor-history", build) / "history.parquet"


@pytest.fixture(scope="session")
def mini_reactor_bundle(shared_dir, mini_reactor_history, mini_reactor) -> Path:
    """A real bundle of the mini reactor (about 15 s of training, once per session)."""

    def build(target: Path) -> None:
        from training.pipeline import train_bundle

        train_bundle([mini_reactor_history], mini_reactor, target / "bundle", target / "report")

    return _once(shared_dir, "mini-reactor-trained", build) / "bundle"
