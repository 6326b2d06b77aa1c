"""The steady-state truth and the oracle against PLANT.md's reference numbers and trends."""

import numpy as np
import pytest

from dragon.simulator import Oracle, PlantParameters, steady_state
from dragon.simulator.truth import NOMINAL_DISTURBANCES, OPERATOR_BASELINE, SETPOINTS

NOMINAL = {**OPERATOR_BASELINE, **NOMINAL_DISTURBANCES}


def at(**changes):
    return {k: float(v) for k, v in steady_state({**NOMINAL, **changes}).items()}


def test_golden_point_matches_reference_numbers():
    y = at()
    assert y["ox1_chp"] == pytest.approx(14.9, abs=0.6)
    assert y["ox2_chp"] == pytest.approx(23.5, abs=0.2)
    assert y["concentrated_chp"] == pytest.approx(81.0, abs=0.2)
    assert y["yield"] == pytest.approx(95.42, abs=0.05)
    assert 27 <= y["phenol_production"] <= 35
    assert 24 <= y["ox1_air_flow"] <= 33 and 13 <= y["ox2_air_flow"] <= 18
    assert 1.0 <= y["ox2_dmba"] <= 1.3 and 0.16 <= y["ox2_ap"] <= 0.22
    assert 92 <= y["evaporator_steam_temperature"] <= 101


def test_vectorised_over_rows_equals_row_by_row():
    t2 = np.array([96.0, 98.0, 100.0])
    rows = steady_state({**NOMINAL, "ox2_temperature": t2})
    for i, value in enumerate(t2):
        assert rows["yield"][i] == pytest.approx(at(ox2_temperature=value)["yield"], rel=1e-12)


def test_trends():
    # selectivity falls with T2; CHPc rises with Tev and falls with Pev
    assert at(ox2_temperature=100)["selectivity"] < at(ox2_temperature=96)["selectivity"]
    assert at(evaporator_temperature=85)["concentrated_chp"] > at()["concentrated_chp"]
    assert at(evaporator_pressure=3.1)["concentrated_chp"] < at()["concentrated_chp"]
    ph = np.linspace(7.0, 9.4, 241)
    best = ph[np.argmax(steady_state({**NOMINAL, "oxidation_ph": ph})["yield"])]
    assert 7.9 <= best <= 8.5
    # O2 matters little at 100 °C and more at high T
    low_t = abs(at(ox1_temperature=100, ox1_offgas_o2=2)["ox1_chp"] - at(ox1_temperature=100)["ox1_chp"])
    high_t = abs(at(ox1_temperature=112, ox1_offgas_o2=2)["ox1_chp"] - at(ox1_temperature=112)["ox1_chp"])
    assert high_t > low_t


def test_physical_ranges_over_the_historical_envelope():
    rng = np.random.default_rng(0)
    n = 2000
    rows = {
        **NOMINAL,
        "ox1_temperature": rng.uniform(104, 109, n),
        "ox2_temperature": rng.uniform(96, 100, n),
        "ox1_offgas_o2": rng.uniform(3, 4, n),
        "ox2_offgas_o2": rng.uniform(3, 4, n),
        "oxidation_ph": rng.uniform(7.0, 7.7, n),
        "evaporator_temperature": rng.uniform(78, 86, n),
        "evaporator_pressure": rng.uniform(2.5, 3.1, n),
        "cumene_feed": rng.uniform(180, 240, n),
    }
    y = steady_state(rows)
    assert np.all((y["yield"] > 90) & (y["yield"] < 99))
    assert np.all((y["ox1_chp"] > 5) & (y["ox1_chp"] < 35))
    assert np.all((y["ox2_chp"] > 10) & (y["ox2_chp"] < 40))
    assert np.all((y["concentrated_chp"] > 60) & (y["concentrated_chp"] < 90))


def test_parameters_are_frozen_and_hashed():
    params = PlantParameters()
    assert params.version_hash() == PlantParameters().version_hash()
    assert params.version_hash() != PlantParameters(kf_ref=1.3).version_hash()
    with pytest.raises(AttributeError):
        params.kf_ref = 2.0  # type: ignore[misc]


@pytest.fixture(scope="module")
def oracle():
    return Oracle()


def test_oracle_global_optimum_sits_on_the_threshold(oracle):
    result = oracle.best_setpoints(NOMINAL, move_limited=False)
    assert result.concentrated_chp == pytest.approx(85.0, abs=1e-6)
    assert result.yield_ == pytest.approx(95.95, abs=0.1)
    assert 0.4 < result.gain < 0.7
    assert "concentrated_chp_max" in result.active and "production_min" in result.active
    assert result.phenol_production >= result.current_phenol_production - 1e-6
    assert result.spread < 1e-8  # every start found the same optimum
    assert result.setpoints["oxidation_ph"] == pytest.approx(8.2, abs=0.2)


def test_oracle_evaluate_is_the_truth(oracle):
    outputs = oracle.evaluate(OPERATOR_BASELINE, NOMINAL_DISTURBANCES)
    assert outputs["yield"] == pytest.approx(at()["yield"], rel=1e-12)


def test_oracle_never_leaves_bounds_or_move_limits(oracle):
    rng = np.random.default_rng(3)
    for _ in range(4):
        state = {
            **NOMINAL,
            "cumene_feed": rng.uniform(175, 240),
            "cooling_water_temperature": rng.uniform(18, 32),
            **{
                name: rng.uniform(lo, hi)
                for name, (lo, hi) in {
                    "ox1_temperature": (104, 109),
                    "ox2_temperature": (96, 100),
                    "ox1_offgas_o2": (3, 4),
                    "ox2_offgas_o2": (3, 4),
                    "oxidation_ph": (7.0, 7.7),
                    "evaporator_temperature": (78, 86),
                    "evaporator_pressure": (2.5, 3.1),
                }.items()
            },
        }
        hidden = {
            "chi": rng.uniform(0.92, 1.08),
            "xi_sp": rng.uniform(0.8, 1.0),
            "xi_ev": rng.uniform(0.5, 1.0),
        }
        result = oracle.best_setpoints(state, hidden)
        for name in SETPOINTS:
            lo, hi = oracle.bounds[name]
            value = result.setpoints[name]
            assert lo <= value <= hi
            assert abs(value - state[name]) <= oracle.max_move[name] + 1e-12
        assert result.gain >= -1e-9
        assert result.concentrated_chp <= 85.0 + 1e-6
