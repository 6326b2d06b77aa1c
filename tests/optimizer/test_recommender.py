import json
from dataclasses import replace

import numpy as np
import pytest
from two_stage_plant import PLANT

from dragon.spec import parse_plant
from optimizer.recommender import Recommender

KEYS = {
    "anchors",
    "stuck_sensors",
    "consistency",
    "status",
    "reason",
    "setpoints",
    "moves",
    "predicted",
    "objective",
    "constraints",
    "anomaly",
    "model_version",
    "explanation",
    "current_setpoints",
    "units",
}


def _respects_limits(spec, rec, state):
    for tag in spec.setpoints:
        info = spec.tags[tag]
        value = rec.setpoints[tag]
        assert info.bounds[0] <= value <= info.bounds[1], (tag, value)
        assert abs(value - state[tag]) <= info.max_move, (tag, value, state[tag])


@pytest.fixture(scope="module")
def lenient(bundle):
    """The same models with detectors that never flag and no consistency check: isolates the optimizer's
    own logic (its states are made up, and their measurements need not agree with the models)."""
    detectors = {name: replace(d, threshold=1.0) for name, d in bundle.detectors.items()}
    spec = parse_plant(PLANT.replace("starts = 4", "starts = 4\nconsistency_sigma = 0"), "<lenient>")
    return Recommender(replace(bundle, detectors=detectors, spec=spec), model_version="lenient")


def test_every_answer_respects_bounds_and_move_limits(recommender, plant, make_states):
    rng = np.random.default_rng(5)
    states = make_states(60, seed=11)
    for state in states[:30]:  # also push some setpoints to the edges of their bounds
        state["t1"] = float(rng.choice([92.0, 108.0, state["t1"]]))
    statuses = set()
    for state in states:
        rec = recommender.recommend(state)
        statuses.add(rec.status)
        if rec.status == "blocked":
            assert rec.setpoints is None and rec.model_dump(mode="json")["setpoints"] is None
        else:
            assert set(rec.setpoints) == set(plant.setpoints)
            _respects_limits(plant, rec, state)
        if rec.status == "recommended":
            assert all(c.satisfied for c in rec.constraints)
            assert rec.objective.gain >= plant.optimizer.min_benefit
    assert "recommended" in statuses


def test_recommendation_json_and_explanation(recommender, make_states):
    rec = next(r for r in map(recommender.recommend, make_states(10)) if r.status == "recommended")
    payload = json.loads(rec.model_dump_json())
    assert set(payload) == KEYS
    assert payload["model_version"] == "test-1"
    assert set(payload["predicted"]) == {"stage_1", "stage_2"}
    assert set(payload["predicted"]["stage_2"]) == {"current", "recommended", "lower", "upper"}
    assert {"max", "bound", "satisfied", "margin", "active"} <= set(payload["constraints"][0])
    assert set(payload["anomaly"]["oxidation"]) == {"score", "threshold", "anomalous", "outside_envelope"}
    assert set(payload["units"]) == {*rec.setpoints, *payload["predicted"]}
    contributions = rec.explanation.contributions
    assert sum(contributions.values()) == pytest.approx(rec.objective.gain, abs=1e-9)
    assert set(rec.explanation.bias_offsets) == {"stage_1", "stage_2"}
    for tag, move in rec.moves.items():
        assert rec.setpoints[tag] - rec.current_setpoints[tag] == pytest.approx(move)


def test_the_recommendation_improves_the_objective_over_the_current_point(recommender, bundle, make_states):
    for rec, state in zip(map(recommender.recommend, make_states(8)), make_states(8), strict=True):
        if rec.status != "recommended":
            continue
        anchors = {m: (a.bias, a.sd) for m, a in rec.anchors.items()}
        ev = recommender.chain.evaluate(
            np.array([[rec.setpoints["t1"], rec.setpoints["o2"]]]),
            state,
            recommender.chain.anchor(state, anchors),
        )
        assert ev.values[0, 1] == pytest.approx(rec.predicted["stage_2"].recommended)
        assert rec.predicted["stage_2"].recommended > rec.predicted["stage_2"].current


def test_anomalous_state_is_blocked_without_setpoints(recommender, make_states):
    rec = recommender.recommend(dict(make_states(1)[0], feed=250.0, m1=60.0))
    assert rec.status == "blocked"
    assert rec.setpoints is None and rec.moves is None
    assert any(v.anomalous for v in rec.anomaly.values())
    assert "threshold" in rec.reason
    assert rec.explanation.far_tags


def test_hold_when_nothing_helps_enough(bundle, make_states):
    greedy = parse_plant(PLANT.replace("min_benefit = 0.01", "min_benefit = 1000.0"), "<greedy>")
    rec = Recommender(replace(bundle, spec=greedy)).recommend(make_states(1)[0])
    assert rec.status == "hold"
    assert "minimum benefit" in rec.reason
    assert rec.setpoints == rec.current_setpoints and set(rec.moves.values()) == {0.0}


def test_a_bound_on_current_at_high_confidence_is_met_by_the_current_state(lenient, make_states):
    # Its limit is the current state's own prediction bound: the state it refers to satisfies it.
    text = PLANT.replace(
        'min = "current"\ntolerance = 0.5\nconfidence = 0.5',
        'min = "current"\ntolerance = 0.0\nconfidence = 0.9',
    )
    assert text != PLANT
    strict = Recommender(replace(lenient.bundle, spec=parse_plant(text, "<strict>")))
    assert strict.spec.optimizer.consistency_sigma > 0
    for state in make_states(5):
        rec = strict.recommend(state)
        assert "violates" not in (rec.reason or ""), rec.reason
        guard = next(c for c in rec.constraints if c.model == "stage_2")
        assert guard.satisfied


def test_setpoint_slightly_outside_bounds_moves_back_inside(lenient, plant, make_states):
    state = dict(make_states(1)[0], t1=91.0)
    rec = lenient.recommend(state)
    assert rec.status == "recommended", rec.reason
    assert "back inside bounds" in rec.reason
    _respects_limits(plant, rec, state)


def test_setpoint_far_outside_bounds_is_blocked_with_reason(lenient, make_states):
    rec = lenient.recommend(dict(make_states(1)[0], o2=0.5))
    assert rec.status == "blocked" and rec.setpoints is None
    assert "o2" in rec.reason and "bounds" in rec.reason


def test_within_limits_keeps_a_setpoint_far_outside_its_bounds_where_it_is(plant):
    """A candidate for a setpoint outside its bounds by more than its move keeps the current value
    (the nudge toward the move limit once walked ulp by ulp from the bound, forever, in a trial)."""
    from optimizer.problem import within_limits

    tags = plant.setpoints
    u0 = np.array([np.mean(plant.tags[tag].bounds) for tag in tags])
    far = plant.tags[tags[0]].bounds[0] - 3 * plant.tags[tags[0]].max_move
    u0[0] = far
    u = within_limits(plant, u0 + np.array([plant.tags[tag].max_move * 2 for tag in tags]), u0)
    assert u[0] == far
    assert all(abs(u[i] - u0[i]) <= plant.tags[tag].max_move for i, tag in enumerate(tags))
    assert all(
        plant.tags[tag].bounds[0] <= u[i] <= plant.tags[tag].bounds[1] for i, tag in enumerate(tags[1:], 1)
    )


def test_infeasible_current_state_moves_toward_feasibility(lenient, plant, make_states):
    state = dict(make_states(1)[0], t1=104.0, o2=3.0, feed=100.0)
    state["m1"] = 14.5  # measured above the constraint: the bias update makes the current point infeasible
    rec = lenient.recommend(state)
    assert rec.status == "recommended", rec.reason
    assert "violates" in rec.reason
    _respects_limits(plant, rec, state)
    assert rec.setpoints["t1"] < state["t1"]  # m1 rises with t1: the move lowers it
    limit = next(c for c in rec.constraints if c.model == "stage_1")
    assert limit.satisfied or limit.bound < 14.5


def test_never_raises_anywhere_in_the_valid_range(recommender, plant):
    rng = np.random.default_rng(9)
    for _ in range(25):
        state = {tag: float(rng.uniform(*info.valid)) for tag, info in plant.tags.items()}
        rec = recommender.recommend(state)
        assert rec.status in {"recommended", "hold", "blocked"}
        assert rec.reason or rec.status == "recommended"
    rec = recommender.recommend({"t1": 100.0})
    assert rec.status == "blocked" and "lacks" in rec.reason
