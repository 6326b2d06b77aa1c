"""What a plant sees in closed loop: a move that has not settled (the anchors follow it, lag compensation
over the recent window, rather than take the still-moving measurement for the settled one and move again
on top of it), and setpoints walked out of the detectors' territory (a recovery move back, not a bare
`blocked`)."""

from dataclasses import replace

import pandas as pd
import pytest

from dragon.bundle import load_bundle
from dragon.data import max_window_hours, parse_state, parse_window
from dragon.simulator.protocol import load_simulator
from dragon.spec import parse_plant
from inference.trial import historian_request
from optimizer.recommender import Recommender

STRIPPER_CUT = 2.0  # MW, four max_moves at once: impurity rises by about 27 ppm over its 2 h lag
SINCE_MOVE_HOURS = 1 / 3  # the move was made 20 min ago: about a sixth of it shows in the analyser


def _operated(spec, seed: int, hours: float = 12.0):
    """The mini reactor's simulator after `hours` under its operators: (simulator, measured frames,
    the operators' last setpoints)."""
    simulator = load_simulator(spec)(spec, days=2, seed=seed)
    measured, recent = [], pd.DataFrame()
    for _ in range(int(hours / 2)):
        setpoints = simulator.operator(recent)
        recent = simulator.step(setpoints, 2.0).measured
        measured.append(recent)
    return simulator, measured, setpoints


def _just_moved(spec, seed: int):
    """The mini reactor under its operators for 12 h, then the stripper cut 20 min ago; the impurity
    limit set 60 % of the way from the old to the new true settled value (it will be crossed)."""
    simulator, measured, setpoints = _operated(spec, seed)
    moved = dict(setpoints, stripper_duty=setpoints["stripper_duty"] - STRIPPER_CUT)
    before = simulator.steady_state(setpoints)["impurity_ppm"]
    after = simulator.steady_state(moved)["impurity_ppm"]
    measured.append(simulator.step(moved, SINCE_MOVE_HOURS).measured)
    limit = round(before + 0.6 * (after - before), 1)
    return simulator, measured, limit


def _answer(bundle, spec_text: str, measured):
    spec = parse_plant(spec_text, "<unsettled test plant>")
    state, recent = historian_request(spec, measured)
    recommender = Recommender(replace(bundle, spec=spec), model_version="mini")
    return recommender.recommend(parse_state(state, spec), parse_window(recent, state, spec))


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_the_product_does_not_move_again_on_top_of_an_unsettled_move(seed, mini_reactor, mini_reactor_bundle):
    bundle = load_bundle(mini_reactor_bundle)
    simulator, measured, limit = _just_moved(mini_reactor, seed)
    text = mini_reactor.source_text.replace("max = 100.0", f"max = {limit}")
    since_move = measured[-1]["impurity_ppm"].mean()  # the analyser's readings since the move
    followed = _answer(bundle, text, measured)
    anchor = followed.anchors["impurity"]
    assert anchor.method == "window mean, lag-compensated"
    assert anchor.history_hours == pytest.approx(max_window_hours(mini_reactor), abs=0.25)  # 3 τ, 7.5 h
    # the analyser still reads below the limit; the anchor knows what is coming
    assert since_move < limit < anchor.settled + 1.645 * anchor.sd and anchor.unsettled_change > 10.0
    assert followed.status == "recommended" and "violates a constraint" in followed.reason
    assert followed.moves["stripper_duty"] >= 0.0  # back toward the limit, never further
    # the same window taken for settled (no lags in the spec): the still-moving reading is the anchor
    blind = _answer(bundle, text.replace("lag_hours", "# lag_hours"), measured)
    assert blind.anchors["impurity"].method == "window mean"
    truth = {
        name: simulator.steady_state(answer.setpoints)["impurity_ppm"]
        for name, answer in (("followed", followed), ("blind", blind))
    }
    assert truth["followed"] < truth["blind"]


def test_setpoints_walked_out_of_territory_get_a_recovery_move(mini_reactor, mini_reactor_bundle):
    recommender = Recommender(load_bundle(mini_reactor_bundle), model_version="mini")
    simulator, measured, setpoints = _operated(mini_reactor, seed=5)
    start = setpoints["reactor_temp"]
    for _ in range(8):  # +2 degC every half hour, as an advisor without a territory margin would
        setpoints = dict(setpoints, reactor_temp=setpoints["reactor_temp"] + 2.0)
        measured.append(simulator.step(setpoints, 0.5).measured)
    state, recent = historian_request(mini_reactor, measured)
    parsed = parse_state(state, mini_reactor)
    assert not recommender.gate.check(parsed).passed  # 16 degC up: beyond the envelope
    answer = recommender.recommend(parsed, parse_window(recent, state, mini_reactor))
    assert answer.status == "recommended" and answer.reason.startswith("recovery: ")
    assert "reactor_temp outside the detectors' territory" in answer.reason
    max_move = mini_reactor.tags["reactor_temp"].max_move
    assert answer.moves["reactor_temp"] == pytest.approx(-max_move)  # back toward where it was, one limit
    assert answer.setpoints["reactor_temp"] > start
    # a day later, blocked meanwhile, the window no longer shows the moves: a setpoint outside the
    # territory is still led back, however long ago it was set
    for _ in range(13):
        measured.append(simulator.step(setpoints, 2.0).measured)
    state, recent = historian_request(mini_reactor, measured)
    later = parse_state(state, mini_reactor)
    assert not recommender.gate.check(later).passed
    still = recommender.recommend(later, parse_window(recent, state, mini_reactor))
    assert still.status == "recommended", still.reason
    assert "reactor_temp outside the detectors' territory" in still.reason and "moved" not in still.reason
    assert -max_move <= still.moves["reactor_temp"] < 0  # toward the territory, at most one move limit
    # a state outside because of a disturbance, with setpoints inside and not moved: a bare block
    disturbed = dict(state, feed_sulfur=parsed["feed_sulfur"] * 3.0, reactor_temp=start)
    disturbed_state = parse_state(disturbed, mini_reactor)
    assert not recommender.gate.check(disturbed_state).passed
    blocked = recommender.recommend(disturbed_state)
    assert blocked.status == "blocked" and blocked.setpoints is None


def test_setpoints_walked_to_where_the_forest_scores_flag_get_a_recovery_move(
    mini_reactor, mini_reactor_bundle
):
    """Moves older than the window took the reactor hotter with less hydrogen: every feature inside its
    envelope, but the combination scores as anomalous. With the setpoints at their training means the
    state would pass, so they explain the flag and step back toward them."""
    recommender = Recommender(load_bundle(mini_reactor_bundle), model_version="mini")
    simulator, measured, setpoints = _operated(mini_reactor, seed=5)
    setpoints = dict(
        setpoints, reactor_temp=setpoints["reactor_temp"] + 10.0, h2_ratio=setpoints["h2_ratio"] - 1.0
    )
    for _ in range(6):  # 12 h: the moves are older than the window (7.5 h)
        measured.append(simulator.step(setpoints, 2.0).measured)
    state, recent = historian_request(mini_reactor, measured)
    parsed = parse_state(state, mini_reactor)
    gate = recommender.gate.check(parsed)
    assert not gate.passed and not any(v.outside_envelope for v in gate.verdicts.values() if v.anomalous)
    answer = recommender.recommend(parsed, parse_window(recent, state, mini_reactor))
    assert answer.status == "recommended" and answer.reason.startswith("recovery: ")
    assert "reactor_temp far from its training mean" in answer.reason and "moved" not in answer.reason
    assert answer.moves["reactor_temp"] < 0 < answer.moves["h2_ratio"]  # both back toward their means


def test_a_fault_stays_blocked_though_the_operators_moved_setpoints_in_the_window(
    mini_reactor, mini_reactor_bundle
):
    """The window shows the operators' shift corrections, and then a disturbance no setpoint explains (a
    sulfur slug: feed sulfur tripled): undoing the corrections would not bring the state back, so they are
    not moves to undo, and the answer is a bare block."""
    recommender = Recommender(load_bundle(mini_reactor_bundle), model_version="mini")
    simulator, measured, setpoints = _operated(mini_reactor, seed=6)
    for tag, step in (("reactor_temp", 2.0), ("h2_ratio", 0.3), ("reactor_temp", 2.0)):
        setpoints = dict(setpoints, **{tag: setpoints[tag] + step})
        measured.append(simulator.step(setpoints, 1.0).measured)
    state, recent = historian_request(mini_reactor, measured)
    window = parse_window(recent, state, mini_reactor)
    slug = parse_state(dict(state, feed_sulfur=state["feed_sulfur"] * 3.0), mini_reactor)
    assert not recommender.gate.check(slug).passed
    answer = recommender.recommend(slug, window)
    assert answer.status == "blocked" and answer.setpoints is None, answer.reason


def test_a_stuck_sensor_is_blocked_naming_the_tag(mini_reactor, mini_reactor_bundle):
    """A live sensor (its training readings never repeat) frozen over the last readings: nothing else
    looks wrong in one state, the window shows it."""
    recommender = Recommender(load_bundle(mini_reactor_bundle), model_version="mini")
    assert recommender.bundle.calibration.repeat_share["reactor_temp"] < 0.01
    _, measured, _ = _operated(mini_reactor, seed=5)
    state, recent = historian_request(mini_reactor, measured)
    parsed, window = parse_state(state, mini_reactor), parse_window(recent, state, mini_reactor)
    assert not recommender.recommend(parsed, window).stuck_sensors
    frozen = [dict(row, reactor_temp=state["reactor_temp"]) for row in recent[-9:]]
    answer = recommender.recommend(parsed, parse_window(recent[:-9] + frozen, state, mini_reactor))
    assert answer.status == "blocked" and answer.reason.startswith("stuck sensor: reactor_temp repeats")
    assert [(s.tag, s.readings) for s in answer.stuck_sensors] == [("reactor_temp", 10)]
    sample_hours = load_simulator(mini_reactor).sample_minutes / 60.0
    assert answer.stuck_sensors[0].hours == pytest.approx(9 * sample_hours)  # frozen since 9 samples ago
