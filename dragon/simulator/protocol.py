"""The simulator plug-in: what a plant's simulator must offer for `dragon trial` (closed loop).

A plant spec names its simulator with

    [simulator]
    entry_point = "package.module:Class"

and `load_simulator(spec)` imports it (the spec file's own folder is searched first, so a
simulator may sit beside its TOML). The class implements `PlantSimulator`:

* construction `Class(spec, days=..., seed=..., step_tests=False)`: one simulated plant over
  `days` days. The seed fixes everything that does not depend on the setpoints (load plan,
  disturbances, drifts, abnormal episodes, sensor noise), so two instances with the same seed
  meet the same disturbances whatever their setpoints: that is how a trial compares arms.
  `step_tests=True` lets the simulator's operator excite the plant (for training histories);
* `step(setpoints, hours)`: the dynamics. Hold the setpoints for `hours`, advance the plant
  (lags, disturbances, episodes, noise) and return what the historian recorded (`measured`:
  the time column, every tag of the spec, an `episode` label, empty when normal) and the truth
  of every sample (`truth`: the true value of the scored tags as the plant has them at that
  moment, lags included);
* `steady_state(setpoints)`: the true settled outputs (every scored tag) for these setpoints at
  the current disturbances and hidden states;
* `oracle(setpoints)`: the move-limited true optimum from these setpoints: the best objective
  within the spec's bounds and max_move, every `scoring.limits` respected and production no
  lower than at `setpoints`;
* `operator(recent)`: the setpoints the plant's own operators would run now, given the rows
  recorded during the last step (empty at the start): the trial's "no advisor" arm;
* `scoring`: which tags the trial scores (objective, production, limits) and `sample_minutes`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd
from pydantic import BaseModel, ConfigDict

from dragon.errors import DragonError
from dragon.spec import PlantSpec

EPISODE = "episode"


class Scoring(BaseModel):
    """The true quantities a trial scores, named by the simulator's tags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    objective: str  # the quantity the plant maximises, a yield in % of the feed
    production: str  # the product rate, t/h
    # true operating limits {tag: (min, max)}, either side may be None; time beyond one is a violation
    limits: dict[str, tuple[float | None, float | None]]


@dataclass(frozen=True)
class Samples:
    """What one `step` produced: the historian's rows and the truth of the same samples."""

    measured: pd.DataFrame  # time column, every tag, `episode`
    truth: pd.DataFrame  # time column, the true (lagged) value of every scored tag


@runtime_checkable
class PlantSimulator(Protocol):
    """A plant for closed-loop trials; see the module docstring for the contract of each member."""

    scoring: Scoring
    sample_minutes: float

    def step(self, setpoints: Mapping[str, float], hours: float) -> Samples: ...

    def steady_state(self, setpoints: Mapping[str, float]) -> dict[str, float]: ...

    def oracle(self, setpoints: Mapping[str, float]) -> dict[str, float]: ...

    def operator(self, recent: pd.DataFrame) -> dict[str, float]: ...


MEMBERS = ("step", "steady_state", "oracle", "operator", "scoring", "sample_minutes")


def load_simulator(spec: PlantSpec) -> type[PlantSimulator]:
    """The simulator class the spec's `[simulator] entry_point` names; a DragonError (exit 2) otherwise."""
    where = spec.source_path or spec.name
    if spec.simulator is None:
        raise DragonError(
            f"plant '{spec.name}' ({where}) has no simulator: add [simulator] "
            'entry_point = "package.module:Class" to its spec to run a trial'
        )
    entry = spec.simulator.entry_point
    module_name, _, class_name = entry.partition(":")
    folder = Path(spec.source_path).parent if spec.source_path and Path(spec.source_path).is_file() else None
    if folder is not None:
        sys.path.insert(0, str(folder.resolve()))
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # the plug-in's own import errors: one line, not its traceback
        problem = f"{type(error).__name__}: {error}"
        raise DragonError(
            f"{where} [simulator] entry_point: cannot import '{module_name}' ({problem})"
        ) from None
    finally:
        if folder is not None:
            sys.path.remove(str(folder.resolve()))
    simulator = getattr(module, class_name, None)
    if simulator is None:
        raise DragonError(f"{where} [simulator] entry_point: '{module_name}' has no '{class_name}'")
    missing = [member for member in MEMBERS if not hasattr(simulator, member)]
    if missing:
        raise DragonError(
            f"{where} [simulator] entry_point: {entry} lacks {', '.join(missing)} of the simulator "
            "protocol (dragon/simulator/protocol.py)"
        )
    return simulator


def record_history(simulator: PlantSimulator, days: float, decide_hours: float = 1.0) -> Samples:
    """Run the plant under its own operators for `days` days (a history to train on, and its truth)."""
    measured, truth = [], []
    elapsed, recent = 0.0, pd.DataFrame()
    while elapsed < days * 24.0 - 1e-9:
        hours = min(decide_hours, days * 24.0 - elapsed)
        samples = simulator.step(simulator.operator(recent), hours)
        recent = samples.measured
        measured.append(samples.measured)
        truth.append(samples.truth)
        elapsed += hours
    return Samples(pd.concat(measured, ignore_index=True), pd.concat(truth, ignore_index=True))
