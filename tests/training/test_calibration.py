"""Calibrated intervals and measurement noise (training/calibration.py)."""

import numpy as np
import pandas as pd
import pytest
from pygam import LinearGAM, s
from scipy import stats

from dragon.spec import load_plant
from training.calibration import conformal_scale, cross_conformal_coverage, measurement_noise

Z95 = stats.norm.ppf(0.975)


def _drifting_plant(n: int, seed: int):
    """y = sin(x) + AR(1) noise (rho 0.9), and after the first half a slow hidden drift the fit never saw:
    residuals that pygam's interval assumes away."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 6, n)
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.9 * noise[i - 1] + rng.normal(0, 0.1)
    t = np.arange(n)
    drift = np.where(t >= n // 2, 0.4 * np.sin(2 * np.pi * (t - n // 2) / 750.0), 0.0)
    return x[:, None], np.sin(x) + drift + noise


def _standardised(gam, X, y):
    lower, upper = gam.prediction_intervals(X, width=0.95).T
    return np.abs(y - gam.predict(X)) / ((upper - lower) / (2 * Z95))


def test_calibrated_intervals_reach_their_coverage_on_a_hold_out_the_calibration_did_not_see():
    X, y = _drifting_plant(6000, seed=3)
    fit, calibration, unseen = slice(0, 3000), slice(3000, 4500), slice(4500, 6000)
    gam = LinearGAM(s(0, n_splines=10)).fit(X[fit], y[fit])
    raw = _standardised(gam, X[unseen], y[unseen])
    assert np.mean(raw <= Z95) < 0.85  # pygam's interval is far too narrow here
    scale = conformal_scale(_standardised(gam, X[calibration], y[calibration]))
    assert scale > 1.2
    assert 0.9 <= np.mean(raw <= Z95 * scale) <= 0.99
    # the cross-conformal estimate of that coverage, from the calibration rows alone
    assert 0.88 <= cross_conformal_coverage(_standardised(gam, X[calibration], y[calibration])) <= 0.99


def test_measurement_noise_is_the_high_frequency_sd_and_skips_held_values():
    spec = load_plant()
    rng = np.random.default_rng(0)
    n = 20000
    process = 80.0 + np.cumsum(rng.normal(0, 0.002, n))  # slow, next to the noise
    lab = np.repeat(20.0 + rng.normal(0, 2.0, n // 120 + 1), 120)[:n]  # one lab value every 2 h
    raw = pd.DataFrame(
        {
            "concentrated_chp": process + rng.normal(0, 0.3, n),
            "feed_inhibitor": lab,
            "ox1_level": np.full(n, 80.0),
        }
    )
    assert measurement_noise(raw, spec, "concentrated_chp") == pytest.approx(0.3, rel=0.08)
    assert measurement_noise(raw, spec, "feed_inhibitor") == pytest.approx(2.0, rel=0.2)  # fewer lab samples
    floor = measurement_noise(raw, spec, "ox1_level")  # a tag that never moves: never zero
    assert 0 < floor < 0.1


def test_consistency_flags_a_measurement_beyond_sigma_sd_of_its_model(loaded_bundle, small_history):
    """The recommender's check (measured target vs its model at the row's measured inputs), over rows."""
    from dragon.features import add_derived
    from training.calibration import consistency_flags

    spec, calibration, gams = loaded_bundle.spec, loaded_bundle.calibration, loaded_bundle.gams
    rows = pd.read_parquet(small_history)
    rows = (
        rows[rows["episode"].fillna("") == ""].iloc[::60].dropna(subset=spec.used_tags).reset_index(drop=True)
    )
    rows = add_derived(rows, spec.derived_features, spec.model_derived_inputs)  # the models' state estimates
    assert consistency_flags(spec, gams, calibration, rows).mean() < 0.1
    sigma = spec.optimizer.consistency_sigma
    at_model = rows.copy()
    for name in spec.model_order:  # every measurement equal to its model's prediction, upstream first
        model = spec.models[name]
        at_model[model.target] = gams[name].predict(at_model[model.features].to_numpy(float))
    assert not consistency_flags(spec, gams, calibration, at_model).any()
    name = [n for n in spec.model_order if spec.models[n].consistency_check][-1]  # a model the check reads
    target = spec.models[name].target
    sd = calibration.consistency_sd(name, calibration.noise(target))
    for shift, flagged in [(0.9, False), (1.1, True)]:
        biased = at_model.assign(**{target: at_model[target] + shift * sigma * sd})
        assert (consistency_flags(spec, gams, calibration, biased) == flagged).all()
    off = spec.model_copy(update={"optimizer": spec.optimizer.model_copy(update={"consistency_sigma": 0.0})})
    assert not consistency_flags(off, gams, calibration, biased).any()


def test_consistency_reads_rows_with_lagged_inputs_as_the_recommender_reads_a_timed_window(
    loaded_bundle, small_history
):
    """A history's rows carry the models' lag-compensated inputs: the check compares the target with the
    model at those inputs against the lagged residual sd (smaller: transients no longer widen it)."""
    from dragon.dynamics import model_input_matrix, model_inputs
    from training.calibration import consistency_flags
    from training.transforms import prepare_training_data

    spec, calibration, gams = loaded_bundle.spec, loaded_bundle.calibration, loaded_bundle.gams
    name = spec.model_order[0]  # no upstream model: judged alone, it reads the same lagged columns
    model = spec.models[name].model_copy(update={"consistency_check": True})
    assert model.lag_hours > 0
    assert calibration.models[name].lagged_residual_sd < calibration.models[name].state_residual_sd
    rows = prepare_training_data(pd.read_parquet(small_history), spec, source="small").holdout
    assert set(model_inputs(spec, name)) <= set(rows.columns)
    at_model = rows.assign(**{model.target: gams[name].predict(model_input_matrix(rows, spec, name))})
    sd = calibration.consistency_sd(name, 0.0, lag_compensated=True)
    assert sd == calibration.models[name].lagged_residual_sd
    sigma = spec.optimizer.consistency_sigma
    judged_alone = spec.model_copy(update={"models": {name: model}})  # only this model judges
    for shift, flagged in [(0.9, False), (1.1, True)]:
        biased = at_model.assign(**{model.target: at_model[model.target] + shift * sigma * sd})
        assert (consistency_flags(judged_alone, gams, calibration, biased) == flagged).all()
    unjudged = judged_alone.model_copy(
        update={"models": {name: model.model_copy(update={"consistency_check": False})}}
    )
    assert not consistency_flags(unjudged, gams, calibration, biased).any()


def test_a_calibration_without_the_lagged_yardstick_keeps_the_state_one():
    from dragon.calibration import Calibration, ModelCalibration

    figures = dict(
        interval_scale=1.0,
        covariance_scale=1.0,
        residual_autocorrelation=0.0,
        state_residual_sd=0.4,
        coverage_raw=0.9,
        coverage_calibrated=0.95,
        holdout_rows=10,
    )
    older = Calibration(models={"m": ModelCalibration(**figures)}, measurement_noise={})
    assert older.consistency_sd("m", 0.3, lag_compensated=True) == pytest.approx(0.5)
    newer = Calibration(
        models={"m": ModelCalibration(**figures, lagged_residual_sd=0.1)}, measurement_noise={}
    )
    assert newer.consistency_sd("m", 0.0, lag_compensated=True) == pytest.approx(0.1)
    assert newer.consistency_sd("m", 0.3) == pytest.approx(0.5)
