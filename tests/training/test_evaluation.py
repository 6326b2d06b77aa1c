"""GAM hold-out metrics, the plots, and the HTML training report."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pygam import LinearGAM, s, te

from dragon.errors import DataError
from dragon.spec import DetectorSpec, GamModel
from training.detectors import evaluate_gate, fit_detector
from training.evaluation import centred_term, evaluate_gam, plot_partial_dependence, plot_residuals
from training.gam_fit import fit_gam
from training.report import model_flags, write_training_report

MODEL = GamModel(
    name="reactor",
    target="conversion",
    features=["temperature", "pressure"],
    interactions=[("temperature", "pressure")],
    n_splines=6,
)
UNITS = {"temperature": "degC", "pressure": "kPa", "conversion": "%"}


def history(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-01-01", periods=n, freq="5min", tz="UTC"),
            "temperature": rng.uniform(100, 110, n),
            "pressure": rng.uniform(2, 6, n),
        }
    )
    frame["conversion"] = (
        0.3 * (frame.temperature - 105) ** 2
        - 2 * frame.pressure
        + 0.1 * frame.temperature * frame.pressure
        + rng.normal(0, 0.2, n)
    )
    return frame


@pytest.fixture(scope="module")
def gam():
    train = history(400, seed=1)
    return LinearGAM(s(0, n_splines=6) + s(1, n_splines=6) + te(0, 1, n_splines=4)).fit(
        train[MODEL.features].to_numpy(), train[MODEL.target].to_numpy()
    )


def test_metrics_on_a_known_case(gam):
    holdout = history(200, seed=2)
    predicted = gam.predict(holdout[MODEL.features].to_numpy())
    # Half the targets sit on the prediction, half 100 above: RMSE = sqrt(0.5 * 100^2), MAE = 50,
    # coverage = 0.5 exactly; the truth is the prediction itself, so R² against it is 1.
    offset = np.where(np.arange(200) % 2 == 0, 0.0, 100.0)
    holdout["conversion"] = predicted + offset
    truth = pd.DataFrame({"conversion_true": predicted})
    holdout.loc[200 - 1, "temperature"] = np.nan  # an incomplete row is left out (it had offset 100)
    metrics = evaluate_gam("reactor", MODEL, gam, holdout, truth, MODEL.features)
    kept = offset[:-1]
    assert metrics.n_rows == 199
    assert metrics.rmse == pytest.approx(np.sqrt(np.mean(kept**2)))
    assert metrics.mae == pytest.approx(kept.mean())
    assert metrics.interval_coverage == pytest.approx(100 / 199)
    target = holdout["conversion"].to_numpy()[:-1]
    assert metrics.r2 == pytest.approx(1 - np.sum(kept**2) / np.sum((target - target.mean()) ** 2))
    assert metrics.r2_truth == pytest.approx(1.0)
    assert evaluate_gam("reactor", MODEL, gam, holdout, None, MODEL.features).r2_truth is None
    assert metrics.rmse_measured_inputs == metrics.rmse  # a static model is fed its measured inputs
    # naive persistence for a static model: each target predicted by the one a row step (5 min) earlier
    assert metrics.rmse_persistence == pytest.approx(np.sqrt(np.mean(np.diff(target) ** 2)))
    assert metrics.rmse_ratio == pytest.approx(metrics.rmse / metrics.rmse_persistence)
    assert set(metrics.to_dict()) == {
        "rmse_persistence",
        "rmse_ratio",
        "rmse",
        "mae",
        "r2",
        "r2_truth",
        "n_rows",
        "interval_coverage",
        "rmse_measured_inputs",
        "extrapolated_share",
    }


def test_rows_outside_the_fitted_range_are_counted_as_extrapolated(gam):
    holdout = history(100, seed=3)
    holdout["temperature"], holdout["pressure"] = 105.0, 4.0  # mid-range
    holdout.loc[:24, "temperature"] = 115.0  # the GAM was fitted on 100-110 degC
    holdout.loc[90:, "pressure"] = 1.0  # and on 2-6 kPa
    metrics = evaluate_gam("reactor", MODEL, gam, holdout, None, MODEL.features)
    assert metrics.extrapolated_share == pytest.approx(0.35)


def test_honest_model_covers_about_95_percent(gam):
    metrics = evaluate_gam("reactor", MODEL, gam, history(600, seed=3), None, MODEL.features)
    assert 0.9 <= metrics.interval_coverage <= 0.99
    assert metrics.r2 > 0.9


def test_missing_target_is_a_clear_error(gam):
    incomplete = history(20, seed=4).drop(columns="conversion")
    with pytest.raises(DataError, match="reactor.*conversion"):
        evaluate_gam("reactor", MODEL, gam, incomplete, None, MODEL.features)


def test_one_partial_dependence_png_per_term_and_a_residual_plot(gam, tmp_path):
    paths = plot_partial_dependence("reactor", MODEL, gam, tmp_path, units=UNITS)
    assert [p.name for p in paths] == [
        "reactor-pd-temperature.png",
        "reactor-pd-pressure.png",
        "reactor-pd-temperature-x-pressure.png",
    ]
    residuals = plot_residuals(
        "reactor", MODEL, gam, history(100, seed=5), tmp_path, inputs=MODEL.features, units=UNITS
    )
    for path in [*paths, residuals]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_partial_dependence_is_centred_and_keeps_its_shape(gam):
    x, line, band = centred_term(gam, 0)
    raw = gam.partial_dependence(term=0, X=gam.generate_X_grid(term=0, n=len(x)))
    assert abs(np.mean(line)) < 1e-9 and np.ptp(line) > 0
    assert np.allclose(np.diff(line), np.diff(raw))  # only the level moved
    assert np.all(band[:, 0] <= line) and np.all(line <= band[:, 1])


def test_report_flags_coverage_or_extrapolation_far_from_nominal(gam):
    honest = evaluate_gam("reactor", MODEL, gam, history(600, seed=3), None, MODEL.features)
    assert model_flags(honest) == []
    narrow = dataclasses.replace(honest, interval_coverage=0.81, extrapolated_share=0.2)
    assert model_flags(narrow) == ["coverage 81%, nominal 95%", "20% of rows extrapolated"]


def test_report_names_every_model_and_links_existing_images(gam, tmp_path):
    holdout = history(150, seed=6)
    plots = {
        name: [
            *plot_partial_dependence(name, MODEL, gam, tmp_path / "plots"),
            plot_residuals(name, MODEL, gam, holdout, tmp_path / "plots", inputs=MODEL.features),
        ]
        for name in ("oxidation_1", "yield")
    }
    metrics = {name: evaluate_gam(name, MODEL, gam, holdout, None, MODEL.features) for name in plots}
    normal = holdout[MODEL.features].assign(episode="")
    spec = DetectorSpec(name="reactor_gate", features=MODEL.features, n_estimators=20)
    detector = fit_detector(spec, normal)
    gate = evaluate_gate(
        {"reactor_gate": detector},
        pd.concat([normal, normal.head(5).assign(episode="vacuum_loss", pressure=50.0)]),
    )
    train = history(400, seed=1)
    fit = fit_gam(MODEL, train[MODEL.features].to_numpy(), train[MODEL.target].to_numpy())
    page = write_training_report(
        tmp_path,
        plant_name="test-plant",
        version=3,
        gam_metrics=metrics,
        gam_fits=dict.fromkeys(plots, fit),
        gate=gate,
        data_report={"rows_in": 1000, "dropped": {"not steady": 10}},
        plots=plots,
    )
    html = page.read_text()
    for name in (
        "oxidation_1",
        "yield",
        "reactor_gate",
        "vacuum_loss",
        "test-plant version 3",
        "not steady",
        "edof",
    ):
        assert name in html
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == 8
    assert all((page.parent / source).is_file() and not Path(source).is_absolute() for source in sources)
