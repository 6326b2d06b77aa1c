"""Candidates keep a margin inside the detectors' envelopes (optimizer/territory.py), on the mini reactor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dragon.bundle import load_bundle
from optimizer.recommender import Recommender
from optimizer.territory import TERRITORY_MARGIN, leaves_territory


@pytest.fixture(scope="module")
def recommender(mini_reactor_bundle):
    return Recommender(load_bundle(mini_reactor_bundle))


@pytest.fixture(scope="module")
def state(mini_reactor_history, mini_reactor):
    rows = pd.read_parquet(mini_reactor_history)
    normal = rows[rows["episode"] == ""]
    return {tag: float(normal[tag].median()) for tag in mini_reactor.tags}


def h2_band(recommender) -> tuple[float, float]:
    detector = recommender.gate.detectors["reactor"]
    i = detector.features.index("h2_ratio")
    low, high = detector.envelope_low[i], detector.envelope_high[i]
    return low, high


def test_a_candidate_may_not_enter_the_margin_band_but_may_leave_it(recommender, state):
    low, high = h2_band(recommender)
    inset = TERRITORY_MARGIN * (high - low)
    candidates = {tag: np.full(3, value) for tag, value in state.items()}
    candidates["h2_ratio"] = np.array([high - 2 * inset, high - inset / 2, high - inset / 4])
    middle = {**state, "h2_ratio": 0.5 * (low + high)}
    assert leaves_territory(recommender.gate, candidates, middle).tolist() == [False, True, True]
    in_band = {**state, "h2_ratio": high - inset / 2}  # already in the band: moving back in is fine
    assert leaves_territory(recommender.gate, candidates, in_band).tolist() == [False, False, True]


def test_a_recommendation_never_walks_a_setpoint_into_the_band(recommender, state):
    low, high = h2_band(recommender)
    inset = TERRITORY_MARGIN * (high - low)
    near_edge = {**state, "h2_ratio": high - 1.2 * inset}  # the objective wants more hydrogen
    answer = recommender.recommend(near_edge)
    assert answer.status in ("recommended", "hold"), answer.reason
    if answer.status == "recommended":
        assert answer.setpoints["h2_ratio"] <= high - inset + 1e-9
