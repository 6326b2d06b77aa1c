"""The simulator plug-in (dragon/simulator/protocol.py), on the mini reactor test plant."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dragon.errors import DragonError, SpecError
from dragon.simulator.protocol import PlantSimulator, load_simulator, record_history
from dragon.spec import parse_plant

SETPOINTS = {"reactor_temp": 172.0, "h2_ratio": 3.0, "stripper_duty": 5.0}


def test_the_entry_point_loads_a_protocol_simulator(mini_reactor):
    simulator = load_simulator(mini_reactor)(mini_reactor, days=1, seed=0)
    assert isinstance(simulator, PlantSimulator)
    assert simulator.scoring.limits == {"impurity_ppm": (None, 100.0)}


def test_same_seed_same_disturbances_whatever_the_setpoints(mini_reactor):
    cls = load_simulator(mini_reactor)
    a, b = cls(mini_reactor, days=2, seed=4), cls(mini_reactor, days=2, seed=4)
    first = a.step(SETPOINTS, 12.0).measured
    second = b.step({**SETPOINTS, "reactor_temp": 180.0}, 12.0).measured
    pd.testing.assert_series_equal(first["feed_flow"], second["feed_flow"])
    assert (first["episode"] == second["episode"]).all()
    assert (second["conversion"].iloc[-1] - first["conversion"].iloc[-1]) > 2.0  # hotter converts more
    other = cls(mini_reactor, days=2, seed=5).step(SETPOINTS, 12.0).measured
    assert not np.allclose(first["feed_flow"], other["feed_flow"])


def test_outputs_answer_a_move_through_their_lags(mini_reactor):
    cls = load_simulator(mini_reactor)
    held, moved = cls(mini_reactor, days=2, seed=0), cls(mini_reactor, days=2, seed=0)
    held.step(SETPOINTS, 4.0), moved.step(SETPOINTS, 4.0)
    new = {**SETPOINTS, "reactor_temp": 178.0}
    settled = moved.steady_state(new)["conversion"] - held.steady_state(SETPOINTS)["conversion"]
    # the same disturbances in both: the difference is the move's response, one lag (1 h) later
    response = moved.step(new, 1.0).truth["conversion"] - held.step(SETPOINTS, 1.0).truth["conversion"]
    assert response.is_monotonic_increasing
    assert response.iloc[-1] / settled == pytest.approx(1.0 - np.exp(-1.0), abs=0.03)


def test_the_oracle_keeps_move_limits_and_the_limit_and_gains(mini_reactor):
    simulator = load_simulator(mini_reactor)(mini_reactor, days=2, seed=0)
    simulator.step(SETPOINTS, 1.0)
    best = simulator.oracle(SETPOINTS)
    for tag, value in best.items():
        assert abs(value - SETPOINTS[tag]) <= mini_reactor.tags[tag].max_move + 1e-9
    now, then = simulator.steady_state(SETPOINTS), simulator.steady_state(best)
    assert then["selectivity"] > now["selectivity"] + 0.1
    assert then["impurity_ppm"] <= 100.0 + 1e-6
    assert then["product_flow"] >= now["product_flow"] - 1e-6


def test_a_history_recorded_under_the_operators_has_every_tag(mini_reactor):
    simulator = load_simulator(mini_reactor)(mini_reactor, days=1, seed=0, step_tests=True)
    history = record_history(simulator, 1.0).measured
    assert len(history) == 24 * 12
    assert set(mini_reactor.tags) <= set(history.columns)
    assert history["time"].is_monotonic_increasing


def without_simulator(spec) -> str:
    return spec.source_text.replace("[simulator]", "").replace(
        'entry_point = "mini_reactor_sim:MiniReactor"', ""
    )


def test_a_plant_without_a_simulator_says_so(mini_reactor):
    with pytest.raises(DragonError, match="has no simulator: add \\[simulator\\] entry_point"):
        load_simulator(parse_plant(without_simulator(mini_reactor), "plant.toml"))


@pytest.mark.parametrize(
    ("entry_point", "message"),
    [
        ("no_such_module_here:Plant", "cannot import 'no_such_module_here'"),
        ("dragon.simulator.protocol:Nothing", "has no 'Nothing'"),
        ("dragon.simulator.protocol:Scoring", "lacks step, steady_state, oracle, operator"),
    ],
)
def test_a_bad_entry_point_is_one_clear_error(mini_reactor, entry_point, message):
    text = mini_reactor.source_text.replace("mini_reactor_sim:MiniReactor", entry_point)
    with pytest.raises(DragonError, match=message):
        load_simulator(parse_plant(text, "plant.toml"))


def test_an_entry_point_without_a_class_is_a_spec_error(mini_reactor):
    text = mini_reactor.source_text.replace("mini_reactor_sim:MiniReactor", "mini_reactor_sim")
    with pytest.raises(SpecError, match=r"\[simulator.entry_point\]"):
        parse_plant(text, "plant.toml")


def test_the_mini_reactor_trains_and_recommends(mini_reactor, mini_reactor_bundle, mini_reactor_history):
    from dragon.bundle import load_bundle
    from optimizer.recommender import Recommender

    bundle = load_bundle(mini_reactor_bundle)
    assert bundle.spec.model_order[0] == "reactor"  # conversion feeds impurity and selectivity
    rows = pd.read_parquet(mini_reactor_history)
    state = {tag: float(rows[tag].iloc[-1]) for tag in mini_reactor.tags}
    answer = Recommender(bundle).recommend(state)
    assert answer.status in {"recommended", "hold", "blocked"}
    assert {c.model for c in answer.constraints} >= {"impurity", "production"} or answer.status == "blocked"
