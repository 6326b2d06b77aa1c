"""The guards a plant engineer trusts a move for: sensor consistency, the window anchor, the production
guard, the risk-aware objective (on the two-stage test plant)."""

import re
from dataclasses import replace

import numpy as np
import pytest
from two_stage_plant import NOISE, PLANT

from dragon.data import RecentWindow
from dragon.spec import parse_plant
from optimizer.recommender import Recommender

# production falls as m1 (stage_1's target) rises, while the objective stage_2 rises with m1 up to 15:
# the optimizer gains by cutting production, as a real one buys yield by lowering conversion.
PRODUCTION = """
[production]
expression = "feed * (30 - m1) / 100"
unit = "t/h"
tolerance = 0.002
confidence = 0.9
"""


def _spec(extra: str = "", **optimizer) -> object:
    text = PLANT + extra
    for key, value in optimizer.items():
        if f"\n{key} = " in text:
            text = re.sub(rf"\n{key} = .*", f"\n{key} = {value}", text)
        else:
            text = text.replace("starts = 4", f"starts = 4\n{key} = {value}")
    return parse_plant(text, "<trust test plant>")


def _noisy_window(state: dict, rows: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {**state, "m1": state["m1"] + rng.normal(0, NOISE), "m2": state["m2"] + rng.normal(0, NOISE)}
        for _ in range(rows)
    ]


def test_a_biased_measurement_is_blocked_naming_the_tag(recommender, make_states):
    state = make_states(1)[0]
    assert recommender.recommend(state).status != "blocked"
    biased = dict(state, m1=state["m1"] + 1.5)  # an analyser reading 1.5 high (>> the 0.2 state residual sd)
    rec = recommender.recommend(biased)
    assert rec.status == "blocked" and rec.setpoints is None
    assert "disagree on m1" in rec.reason
    check = next(c for c in rec.consistency if c.tag == "m1")
    assert not check.consistent and check.z > 4
    assert not any(v.anomalous for v in rec.anomaly.values())  # the detectors alone would have let it through


def test_a_model_left_out_of_the_consistency_check_does_not_judge_its_target(bundle, make_states):
    # A model whose error drifts with a hidden state none of its inputs estimates: its check is off.
    text = PLANT.replace('target = "m1"', 'target = "m1"\nconsistency_check = false')
    assert text != PLANT
    unjudged = Recommender(replace(bundle, spec=parse_plant(text, "<unjudged>")))
    state = make_states(1)[0]
    rec = unjudged.recommend(dict(state, m1=state["m1"] + 1.5))
    assert "disagree on m1" not in (rec.reason or "")  # stage_2, which reads m1, may still disagree
    assert [c.model for c in rec.consistency] == ["stage_2"]


def test_a_window_anchor_narrows_the_bound_against_one_reading(recommender, make_states):
    state = make_states(1)[0]
    single = recommender.recommend(state)
    windowed = recommender.recommend(state, RecentWindow(_noisy_window(state, 15)))
    assert single.anchors["stage_1"].method == "single reading"
    assert single.anchors["stage_1"].sd == pytest.approx(NOISE)  # the tag's measurement noise, never zero
    assert windowed.anchors["stage_1"].method == "window mean" and windowed.anchors["stage_1"].rows == 16
    assert windowed.anchors["stage_1"].sd < single.anchors["stage_1"].sd / 2
    # the absolute limit on stage_1 rests on the anchor: its bound's sd shrinks at the current state
    chain = recommender.chain

    def level_sd_now(rec) -> float:
        anchor = chain.anchor(state, {m: (a.bias, a.sd) for m, a in rec.anchors.items()})
        ev = chain.evaluate(np.array([[state["t1"], state["o2"]]]), state, anchor)
        return float(ev.level_sd("stage_1")[0])

    assert level_sd_now(windowed) < level_sd_now(single) / 2


def test_the_production_guard_never_passes_a_loss_beyond_its_tolerance(bundle, make_states):
    unguarded = Recommender(replace(bundle, spec=_spec(consistency_sigma=0)))
    guarded = Recommender(replace(bundle, spec=_spec(PRODUCTION, consistency_sigma=0)))
    cut_without_guard = 0
    for state in make_states(30, seed=21):
        rec = guarded.recommend(state)
        free = unguarded.recommend(state)
        if free.status == "recommended":
            m1_moved = free.predicted["stage_1"].recommended
            cut_without_guard += (30 - m1_moved) < (1 - 0.002) * (30 - state["m1"])
        if rec.status != "recommended":
            continue
        guard = next(c for c in rec.constraints if c.guard == "production")
        assert guard.basis == "change" and guard.model == "production"
        current = rec.predicted["production"].current
        assert guard.limit == pytest.approx(current * (1 - 0.002))
        assert guard.bound >= guard.limit - 1e-6  # the loss at 90 % confidence stays within the tolerance
    assert cut_without_guard > 0  # without the guard the optimizer does cut production on these states


def test_risk_aversion_maximises_the_gain_lower_bound_and_holds_below_the_benefit(bundle, make_states):
    bold = Recommender(replace(bundle, spec=_spec(risk_aversion=0, consistency_sigma=0)))
    state = next(s for s in make_states(12, seed=5) if bold.recommend(s).status == "recommended")
    mean = bold.recommend(state).objective
    assert mean.gain_lower == pytest.approx(mean.gain)  # risk-neutral: the bound is the mean
    # a benefit the mean gain clears but its lower bound at 3 sd does not
    benefit = mean.gain - 1.5 * mean.gain_sd
    careful = Recommender(
        replace(bundle, spec=_spec(risk_aversion=3, consistency_sigma=0, min_benefit=benefit))
    )
    assert careful.spec.optimizer.min_benefit == benefit
    rec = careful.recommend(state)
    assert rec.status == "hold" and "lower bound" in rec.reason
    assert rec.moves == dict.fromkeys(rec.moves, 0.0)
    daring = Recommender(
        replace(bundle, spec=_spec(risk_aversion=0, consistency_sigma=0, min_benefit=benefit))
    )
    assert daring.recommend(state).status == "recommended"


def test_the_recommender_runs_on_the_branching_mini_reactor(mini_reactor_bundle, mini_reactor_history):
    """A plant with other tags, one model feeding two, a ppm limit on a noisy analyser and production as
    an expression over two model outputs: every guard works through the same code."""
    import pandas as pd

    from dragon.bundle import load_bundle
    from dragon.data import parse_state

    bundle = load_bundle(mini_reactor_bundle)
    recommender = Recommender(bundle, model_version="mini")
    frame = pd.read_parquet(mini_reactor_history)
    tags = [t for t in bundle.spec.tags if t in frame]
    rows = frame[tags].dropna().iloc[-400::40].to_dict("records")
    statuses = set()
    for i, raw in enumerate(rows[1:], start=1):
        state = parse_state(raw, bundle.spec)
        rec = recommender.recommend(state, RecentWindow([parse_state(rows[i - 1], bundle.spec)]))
        statuses.add(rec.status)
        assert {a.method for a in rec.anchors.values()} <= {"window mean"}
        if rec.status != "recommended":
            continue
        guards = {c.guard: c for c in rec.constraints}
        assert guards["production"].model == "production" and guards["production"].satisfied
        impurity = next(c for c in rec.constraints if c.model == "impurity")
        assert impurity.basis == "level" and impurity.bound <= 100.0 + 1e-6
        assert rec.units["production"] == "t/h"
        assert rec.objective.gain_lower >= bundle.spec.optimizer.min_benefit
    assert "recommended" in statuses
    # the analyser reading 60 ppm high against its model (sd about 9.5 ppm): blocked, naming the tag
    state = parse_state(rows[-1], bundle.spec)
    rec = recommender.recommend(dict(state, impurity_ppm=state["impurity_ppm"] + 60.0))
    assert rec.status == "blocked" and "disagree on impurity_ppm" in rec.reason
