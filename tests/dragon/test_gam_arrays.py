"""The bundle's GAM format: JSON + npz round trip, no pickle, no refit, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from pygam import LinearGAM, s, te

from dragon.errors import BundleError
from dragon.gam_arrays import load_gam, save_gam

FEATURES = ["evaporator_temperature", "evaporator_pressure", "ox2_chp"]


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform([65.0, 2.0, 20.0], [92.0, 6.0, 30.0], size=(n, 3))


@pytest.fixture(scope="module")
def gam() -> LinearGAM:
    X = _rows(1500, 1)
    y = 70 + 0.3 * X[:, 0] - 2 * np.log(X[:, 1]) + np.sin(X[:, 2] / 3) + 0.01 * X[:, 0] * X[:, 1]
    y += np.random.default_rng(2).normal(0, 0.2, len(y))
    model = LinearGAM(
        s(0, n_splines=6, constraints="monotonic_inc", lam=3.0)
        + s(1, n_splines=5)
        + s(2, n_splines=7, lam=0.1)
        + te(0, 1, n_splines=4, lam=[2.0, 20.0])
    )
    return model.fit(X, y)


@pytest.fixture
def saved(gam, tmp_path):
    paths = save_gam(gam, tmp_path / "gams", "concentration", feature_names=FEATURES)
    return tmp_path / "gams", paths


def test_round_trip_gives_identical_predictions_without_refitting(gam, saved, monkeypatch):
    directory, paths = saved
    assert [p.name for p in paths] == ["concentration.json", "concentration.npz"]

    def refuse(*args, **kwargs):
        raise AssertionError("load_gam must not fit")

    monkeypatch.setattr(LinearGAM, "fit", refuse)
    loaded = load_gam(directory, "concentration")
    X = _rows(300, 9) * 1.05  # partly outside the training range: extrapolation too
    np.testing.assert_allclose(loaded.predict(X), gam.predict(X), rtol=1e-12, atol=0)
    np.testing.assert_allclose(
        loaded.prediction_intervals(X, width=0.9), gam.prediction_intervals(X, width=0.9), rtol=1e-12, atol=0
    )
    for term in range(4):
        grid = gam.generate_X_grid(term, n=25)
        np.testing.assert_allclose(
            loaded.partial_dependence(term, X=grid),
            gam.partial_dependence(term, X=grid),
            rtol=1e-12,
            atol=1e-12,
        )
    assert loaded.lam == gam.lam and loaded.terms.constraints == gam.terms.constraints
    assert loaded.statistics_["edof"] == gam.statistics_["edof"]
    np.testing.assert_array_equal(loaded.statistics_["cov"], gam.statistics_["cov"])


def test_files_are_plain_json_and_arrays(saved):
    directory, _ = saved
    layout = json.loads((directory / "concentration.json").read_text())
    assert layout["feature_names"] == FEATURES
    assert [t["kind"] for t in layout["terms"]] == ["spline", "spline", "spline", "tensor", "intercept"]
    tensor = layout["terms"][3]
    assert tensor["features"] == [0, 1] and [m["lam"] for m in tensor["margins"]] == [[2.0], [20.0]]
    assert tensor["coef"] == [18, 34]
    assert layout["terms"][0]["margins"][0]["constraints"] == ["monotonic_inc"]
    with np.load(directory / "concentration.npz", allow_pickle=False) as npz:
        assert npz["coef"].shape == (35,) and npz["cov"].shape == (35, 35)


def test_summary_works_after_loading(saved, capsys):
    loaded = load_gam(saved[0], "concentration")
    with pytest.warns(UserWarning):
        loaded.summary()
    assert "te(0, 1)" in capsys.readouterr().out


def _rewrite_json(directory, change) -> None:
    path = directory / "concentration.json"
    layout = json.loads(path.read_text())
    change(layout)
    path.write_text(json.dumps(layout))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format_version=99), "version 99"),
        (lambda d: d["terms"][3].update(coef=[18, 30]), "coefficient slice"),
        (lambda d: d["terms"][0]["margins"][0].update(n_splines=7), "coefficient slice"),
        (lambda d: d["terms"].insert(0, {"kind": "intercept", "coef": [0, 1]}), "term kinds"),
        (lambda d: d["terms"][1].pop("margins"), "margins"),
        (lambda d: d.update(feature_names=["a"]), "feature names"),
    ],
)
def test_malformed_layout_is_a_bundle_error(saved, change, message):
    directory, _ = saved
    _rewrite_json(directory, change)
    with pytest.raises(BundleError, match=message):
        load_gam(directory, "concentration")


def test_broken_or_missing_files_are_bundle_errors(saved):
    directory, _ = saved
    (directory / "concentration.json").write_text("{not json")
    with pytest.raises(BundleError, match="malformed GAM"):
        load_gam(directory, "concentration")
    with pytest.raises(BundleError, match="missing"):
        load_gam(directory, "yield")


def test_arrays_of_the_wrong_size_are_refused(saved):
    directory, _ = saved
    with np.load(directory / "concentration.npz") as npz:
        arrays = dict(npz)
    arrays["cov"] = arrays["cov"][:-1, :-1]
    np.savez(directory / "concentration.npz", **arrays)
    with pytest.raises(BundleError, match="do not fit 35 coefficients"):
        load_gam(directory, "concentration")


def test_pickled_arrays_are_refused(saved):
    directory, _ = saved
    with np.load(directory / "concentration.npz") as npz:
        arrays = dict(npz)
    arrays["coef"] = np.array([object()] * 35, dtype=object)  # would need pickle to load
    np.savez(directory / "concentration.npz", **arrays)
    with pytest.raises(BundleError, match="malformed GAM"):
        load_gam(directory, "concentration")


def test_an_unfitted_gam_cannot_be_saved(tmp_path):
    with pytest.raises(BundleError, match="not fitted"):
        save_gam(LinearGAM(s(0)), tmp_path, "raw")


def test_dragon_gam_arrays_does_not_import_training():
    code = "import sys, dragon.gam_arrays; print(any(m.split('.')[0] == 'training' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
