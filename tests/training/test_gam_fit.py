"""fit_gam: smoothing selection from sufficient statistics equals pygam's own fit."""

from __future__ import annotations

import numpy as np
import pytest

from dragon.errors import DataError
from dragon.spec import GamModel
from training.gam_fit import (
    PenalisedProblem,
    ShapePenalty,
    accumulate,
    build_gam,
    evaluate,
    fit_gam,
    penalty_components,
)

FEATURES = ["ox1_temperature", "ox1_offgas_o2", "oxidation_ph", "feed_chp"]
GRID = [1e-2, 1.0, 100.0, 1e4]


def _model(**overrides) -> GamModel:
    fields = dict(
        name="oxidation_1",
        target="ox1_chp",
        features=FEATURES,
        interactions=[("ox1_temperature", "ox1_offgas_o2")],
        n_splines=6,
        lam_grid=GRID,
        selection="gcv",  # pygam's own criterion: these tests compare with pygam
    )
    return GamModel(**(fields | overrides))


def _history(rows: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform([100.0, 1.0, 6.8, 0.0], [114.0, 5.0, 9.4, 2.0], size=(rows, 4))
    t, o2, ph, chp = ((X - X.min(0)) / np.ptp(X, 0)).T
    y = 20 + 3 * t + np.sin(4 * o2) + 0.5 * (ph - 0.5) ** 2 + 0.2 * chp + 0.8 * t * o2
    return X, y + rng.normal(0, 0.1, rows)


def _pygam_fit(model: GamModel, lam: list[list[float]], X: np.ndarray, y: np.ndarray):
    gam = build_gam(model)
    gam.terms.lam = [v for term in lam for v in term]
    return gam.fit(X, y)


@pytest.fixture(scope="module")
def data():
    return _history(3000)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return fit_gam(_model(), X, y, chunk_rows=700)


def test_build_gam_follows_the_spec():
    model = _model(shape={"ox1_temperature": "monotonic_inc"}, n_splines=7)
    gam = build_gam(model)
    terms = list(gam.terms)
    assert [t.feature for t in terms[:4]] == [0, 1, 2, 3]
    assert all(t.n_splines == 7 for t in terms[:4])
    assert terms[0].constraints == ["monotonic_inc"] and terms[1].constraints == [None]
    assert terms[4].istensor and [int(m.feature) for m in terms[4]] == [0, 1]
    # the constrained feature keeps its shape inside the interaction as well
    assert [m.constraints for m in terms[4]] == [["monotonic_inc"], [None]]


def test_fit_equals_pygam_fit_with_the_selected_lambdas(fitted, data):
    X, y = data
    reference = _pygam_fit(_model(), fitted.lam, X, y)
    X_new, _ = _history(400, seed=11)
    np.testing.assert_allclose(fitted.gam.predict(X_new), reference.predict(X_new), rtol=1e-6)
    np.testing.assert_allclose(
        fitted.gam.prediction_intervals(X_new), reference.prediction_intervals(X_new), rtol=1e-6
    )
    ours, theirs = fitted.gam.statistics_, reference.statistics_
    assert ours["GCV"] == pytest.approx(theirs["GCV"], rel=1e-6)
    for key in ("edof", "scale", "AIC", "AICc", "loglikelihood", "deviance"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-4), key
    assert set(ours) == set(theirs)
    assert fitted.gcv == ours["GCV"] and fitted.edof == ours["edof"] and fitted.n_rows == len(y)


def test_pygam_tools_work_on_the_fitted_model(fitted, capsys):
    gam = fitted.gam
    assert gam.partial_dependence(0, X=gam.generate_X_grid(0, n=20)).shape == (20,)
    assert np.all(np.isfinite(gam.statistics_["se"]))
    with pytest.warns(UserWarning):
        gam.summary()
    assert "Effective DoF" in capsys.readouterr().out
    assert fitted.terms[-1] == "te(ox1_temperature,ox1_offgas_o2)"
    assert [len(lams) for lams in fitted.lam] == [1, 1, 1, 1, 2]


def test_selection_beats_pygam_gridsearch_on_the_same_grid(fitted, data):
    X, y = data
    searched = build_gam(_model())
    searched.gridsearch(X, y, lam=np.asarray(GRID), progress=False)
    # per-term selection starts from the best shared lambda, so it can only improve GCV
    assert fitted.gcv <= searched.statistics_["GCV"] * (1 + 1e-6)
    assert len({v for term in fitted.lam for v in term}) > 1  # lambdas really differ per term


def test_statistics_do_not_depend_on_chunking_and_knots_span_all_rows(data):
    X, y = data
    X = X.copy()
    X[-1, 2] = 9.9  # the extreme value sits in the last chunk only
    whole = fit_gam(_model(), X, y, chunk_rows=len(y))
    chunked = fit_gam(_model(), X, y, chunk_rows=450)
    assert whole.gam.terms[2].edge_knots_[1] == 9.9 == chunked.gam.terms[2].edge_knots_[1]
    assert chunked.lam == whole.lam
    np.testing.assert_allclose(chunked.gam.predict(X[:200]), whole.gam.predict(X[:200]), rtol=1e-10)


def test_penalty_is_linear_in_the_lambdas(fitted):
    gam = fitted.gam
    components = penalty_components(gam)
    lams = [v for term in fitted.lam for v in term]
    combined = sum(lam * P for lam, P in zip(lams, components, strict=True))
    np.testing.assert_allclose(combined, gam.terms.build_penalties().toarray(), atol=1e-9)


def test_shape_penalty_equals_pygam_constraints():
    model = _model(
        shape={"ox1_temperature": "monotonic_inc", "ox1_offgas_o2": "concave", "feed_chp": "convex"}
    )
    gam = build_gam(model)
    gam._validate_params()
    gam._validate_data_dep_params(np.array([[100.0, 1.0, 6.8, 0.0], [114.0, 5.0, 9.4, 2.0]]))
    shape = ShapePenalty.of(gam)
    rng = np.random.default_rng(0)
    for _ in range(3):
        coef = rng.normal(size=gam.terms.n_coefs)
        expected = gam.terms.build_constraints(coef, gam._constraint_lam, gam._constraint_l2).toarray()
        np.testing.assert_allclose(shape.matrix(shape.violated(coef)), expected, rtol=1e-12, atol=1e-5)


def test_monotonic_shape_holds_and_matches_pygam(data):
    X, y = data
    y = y - 6.0 * np.sin(np.pi * (X[:, 0] - 100) / 14)  # a bump that violates monotonicity
    model = _model(shape={"ox1_temperature": "monotonic_inc"})
    fit = fit_gam(model, X, y)
    grid = np.tile(X[:1], (50, 1))
    grid[:, 0] = np.linspace(100.0, 114.0, 50)
    assert np.diff(fit.gam.predict(grid)).min() > -1e-6
    reference = _pygam_fit(model, fit.lam, X, y)
    # both solve with a 1e9 constraint penalty: agreement is limited by its conditioning
    np.testing.assert_allclose(fit.gam.predict(X[:300]), reference.predict(X[:300]), rtol=1e-5)


def test_evaluate_reproduces_pygam_gcv_for_a_shared_lambda(fitted, data):
    X, y = data
    gam = build_gam(_model())
    gam._validate_params()
    gam._validate_data_dep_params(X)
    gam.statistics_ = {"n_samples": len(y), "m_features": X.shape[1]}
    problem = PenalisedProblem(
        stats=accumulate(gam, X, y, chunk_rows=1000),
        blocks=[],
        components=penalty_components(gam),
        shape=None,
        max_iter=100,
        tol=1e-4,
    )
    candidate = evaluate(problem, (1.0,) * len(problem.components))
    reference = _pygam_fit(_model(), [[1.0]] * 4 + [[1.0, 1.0]], X, y)
    assert candidate.gcv == pytest.approx(reference.statistics_["GCV"], rel=1e-7)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [(1, np.nan, "tag 'ox1_offgas_o2' has 1 NaN"), (None, np.inf, "tag 'ox1_chp' has 1 NaN/inf")],
)
def test_nan_rows_are_refused_naming_model_and_tag(data, column, value, message):
    X, y = data[0].copy(), data[1].copy()
    if column is None:
        y[17] = value
    else:
        X[17, column] = value
    with pytest.raises(DataError, match=rf"model 'oxidation_1': {message}.*row 17"):
        fit_gam(_model(), X, y)


def test_constant_feature_and_too_few_rows_are_refused(data):
    X, y = data[0].copy(), data[1]
    X[:, 3] = 1.5
    with pytest.raises(DataError, match="feature 'feed_chp' is constant"):
        fit_gam(_model(), X, y)
    with pytest.raises(
        DataError, match=r"oxidation_1.*50 training rows for 46 coefficients even at n_splines = 5"
    ):
        fit_gam(_model(), data[0][:50], y[:50])
    with pytest.raises(DataError, match="expected 4 feature columns"):
        fit_gam(_model(), data[0][:, :3], y)
    with pytest.raises(DataError, match="target 'ox1_chp' is constant"):
        fit_gam(_model(), data[0], np.full(len(y), 20.0))
    with pytest.raises(DataError, match="not numeric"):
        fit_gam(_model(), data[0].astype(str).astype(object) + "x", y)


def test_basis_size_follows_the_rows(data):
    X, y = data
    assert fit_gam(_model(), X, y).n_splines == 6  # 3000 rows: the spec's basis
    short = fit_gam(_model(), X[:150], y[:150])  # 150 rows < 3 x 61 coefficients of the spec's basis
    assert short.n_splines == 5
    assert short.gam.terms[0].n_splines == 5 and short.gam.terms[4].n_coefs == 25


def test_blocked_cv_scores_each_block_with_a_fit_on_the_other_blocks(data):
    X, y = data
    gam = build_gam(_model())
    gam._validate_params()
    gam._validate_data_dep_params(X)
    gam.statistics_ = {"n_samples": len(y), "m_features": X.shape[1]}
    folds = np.array_split(np.arange(len(y)), 3)
    blocks = [accumulate(gam, X[rows], y[rows], chunk_rows=500) for rows in folds]
    components = penalty_components(gam)
    problem = PenalisedProblem(sum(blocks[1:], blocks[0]), blocks, components, None, 100, 1e-4)
    lams = (1.0, 10.0, 0.1, 100.0, 1.0, 1.0)
    candidate = evaluate(problem, lams)
    # the same folds the slow way: refit on the rows of the other blocks, score on the block
    errors = []
    for held_out in folds:
        rest = np.setdiff1d(np.arange(len(y)), held_out)
        refit = PenalisedProblem(
            accumulate(gam, X[rest], y[rest], chunk_rows=500), [], components, None, 100, 1e-4
        )
        coef = evaluate(refit, lams).coef
        errors.append(np.sum((gam._modelmat(X[held_out]) @ coef - y[held_out]) ** 2))
    assert candidate.cv == pytest.approx(sum(errors) / len(y), rel=1e-8)


def test_blocked_cv_selection_leaves_pygams_fit_for_its_lambdas(data):
    X, y = data
    model = _model(selection="blocked_cv", cv_blocks=4)
    fit = fit_gam(model, X, y)
    reference = _pygam_fit(model, fit.lam, X, y)
    np.testing.assert_allclose(fit.gam.predict(X[:300]), reference.predict(X[:300]), rtol=1e-6)
    assert fit.gam.statistics_["GCV"] == pytest.approx(reference.statistics_["GCV"], rel=1e-6)
