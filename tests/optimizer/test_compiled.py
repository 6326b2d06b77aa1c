import numpy as np
import pytest
from pygam import LinearGAM, l, s, te

from dragon.errors import BundleError
from optimizer.compiled import CompiledGAM


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (300, 4))
    X[:, 1] *= 10
    X[:, 2] = X[:, 2] * 5 - 2
    y = np.sin(3 * X[:, 0]) + 0.1 * X[:, 1] + X[:, 2] * X[:, 0] + 0.3 * X[:, 3] + rng.normal(0, 0.1, 300)
    gam = LinearGAM(s(0, n_splines=8, constraints="monotonic_inc") + s(1) + te(0, 2, n_splines=[5, 6]) + l(3))
    gam.fit(X, y)
    return gam, X, CompiledGAM.from_pygam(gam, ["a", "b", "c", "d"])


def test_matches_pygam_inside_outside_and_on_the_knots(fitted):
    gam, X, compiled = fitted
    rng = np.random.default_rng(1)
    outside = rng.uniform(-0.6, 1.6, (200, 4)) * [1, 10, 5, 1] + [0, 0, -2, 0]  # extrapolation on every term
    rows = np.vstack([X, outside, X.min(axis=0), X.max(axis=0)])
    assert np.max(np.abs(compiled.predict(rows) - gam.predict(rows))) < 1e-9
    assert compiled.verify(rows, gam) < 1e-9


def test_intervals_match_pygam(fitted):
    gam, X, compiled = fitted
    rows = X[:50] * 1.2
    intervals = gam.prediction_intervals(rows, width=0.9)
    assert np.allclose(compiled.prediction_bound(rows, 0.95, "upper"), intervals[:, 1], atol=1e-9, rtol=0)
    assert np.allclose(compiled.prediction_bound(rows, 0.95, "lower"), intervals[:, 0], atol=1e-9, rtol=0)
    assert np.allclose(
        compiled.interval_half_width(rows, 0.9), (intervals[:, 1] - intervals[:, 0]) / 2, atol=1e-9
    )
    confidence = gam.confidence_intervals(rows, width=0.9)
    se = compiled.standard_error(rows)
    assert np.allclose(gam.predict(rows) + compiled.quantile(0.95) * se, confidence[:, 1], atol=1e-9, rtol=0)


def test_gradients_match_finite_differences(fitted):
    gam, X, compiled = fitted
    rows = np.vstack([X[:5], X[:5] * 1.5 - 0.2])  # inside and extrapolated
    M, slopes = compiled.rows_with_slopes(rows)
    gradient = compiled.input_gradient(compiled.coef, slopes)
    assert np.allclose(M @ compiled.coef, gam.predict(rows), atol=1e-9)
    h = 1e-6
    for f in range(4):
        up, down = rows.copy(), rows.copy()
        up[:, f] += h
        down[:, f] -= h
        fd = (compiled.predict(up) - compiled.predict(down)) / (2 * h)
        assert np.allclose(gradient[:, f], fd, atol=1e-6)


def test_verify_refuses_a_mismatch(fitted):
    gam, X, compiled = fitted
    tampered = CompiledGAM.from_pygam(gam, ["a", "b", "c", "d"])
    tampered.coef = tampered.coef + 1e-6
    with pytest.raises(BundleError, match="differs from pygam"):
        tampered.verify(X[:10], gam)


def test_unsupported_term_is_refused():
    from pygam import f

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 3, 100), rng.uniform(size=100)])
    gam = LinearGAM(f(0) + s(1)).fit(X, rng.normal(size=100))
    with pytest.raises(BundleError, match="not supported"):
        CompiledGAM.from_pygam(gam, ["a", "b"])
