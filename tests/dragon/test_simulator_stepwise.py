"""The default plant behind the simulator protocol (dragon/simulator/stepwise.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dragon.simulator.protocol import PlantSimulator, load_simulator, record_history
from dragon.simulator.truth import OPERATOR_BASELINE
from dragon.spec import load_plant

DAYS = 2


@pytest.fixture(scope="module")
def plant_class():
    return load_simulator(load_plant())


def test_the_default_plant_names_its_simulator(plant_class):
    plant = plant_class(load_plant(), days=DAYS, seed=0)
    assert isinstance(plant, PlantSimulator)
    assert plant.scoring.limits["concentrated_chp"] == (None, 85.0)


def test_two_arms_of_one_seed_meet_the_same_disturbances(plant_class):
    spec = load_plant()
    held, moved = plant_class(spec, days=DAYS, seed=3), plant_class(spec, days=DAYS, seed=3)
    held.step(OPERATOR_BASELINE, 1.0), moved.step(OPERATOR_BASELINE, 1.0)  # both start settled
    a = held.step(OPERATOR_BASELINE, 6.0)
    b = moved.step({**OPERATOR_BASELINE, "evaporator_temperature": 84.0}, 6.0)
    pd.testing.assert_series_equal(a.measured["cumene_feed"], b.measured["cumene_feed"])
    response = b.truth["concentrated_chp"] - a.truth["concentrated_chp"]
    settled = (
        moved.steady_state({**OPERATOR_BASELINE, "evaporator_temperature": 84.0})["concentrated_chp"]
        - held.steady_state(OPERATOR_BASELINE)["concentrated_chp"]
    )
    assert settled > 0.5  # a hotter flash concentrates
    # one sample in, nothing shows yet; after 5.5 h (the lag) about 1 - 1/e of it
    assert response.iloc[0] < 0.01 * settled
    assert response.iloc[int(5.5 * 60) - 1] / settled == pytest.approx(1.0 - np.exp(-1.0), abs=0.03)


def test_the_steady_state_is_the_truth_at_nominal(plant_class):
    plant = plant_class(load_plant(), days=DAYS, seed=0)
    outputs = plant.steady_state(OPERATOR_BASELINE)
    assert 75.0 < outputs["concentrated_chp"] < 85.0
    assert 94.5 < outputs["yield"] < 96.0


def test_the_oracle_moves_within_limits_and_gains(plant_class):
    spec = load_plant()
    plant = plant_class(spec, days=DAYS, seed=0)
    plant.step(OPERATOR_BASELINE, 1.0)
    best = plant.oracle(OPERATOR_BASELINE)
    for tag, value in best.items():
        assert abs(value - OPERATOR_BASELINE[tag]) <= spec.tags[tag].max_move + 1e-9
    now, then = plant.steady_state(OPERATOR_BASELINE), plant.steady_state(best)
    assert then["yield"] > now["yield"]
    assert then["concentrated_chp"] <= 85.0 + 1e-6
    assert then["phenol_production"] >= now["phenol_production"] - 1e-6


def test_under_its_operators_the_plant_reads_like_its_history(plant_class):
    spec = load_plant()
    recorded = record_history(plant_class(spec, days=DAYS, seed=5), DAYS, decide_hours=2.0)
    history = recorded.measured
    assert len(history) == DAYS * 24 * 60
    assert set(spec.tags) <= set(history.columns)
    normal = history[history["episode"] == ""]
    assert 78.0 < normal["concentrated_chp"].median() < 84.0  # the operators hold it near 81 wt %
    assert normal["feed_chp"].nunique() <= DAYS * 3 + 1  # a lab value, held for 8 h
    assert normal["yield"].nunique() <= DAYS * 24 + 1  # an hourly estimate
