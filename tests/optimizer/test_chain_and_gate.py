import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from dragon.errors import BundleError
from optimizer.anchor import estimate_anchors
from optimizer.chain import CompiledChain
from optimizer.gate import CompiledForest, Gate


@pytest.fixture(scope="module")
def chain(bundle):
    return CompiledChain.from_bundle(bundle)


def _anchored(chain, state, sd=0.05):
    """The chain pinned to `state`, every model whose target it carries anchored on that one reading with
    sd `sd`."""
    anchors = estimate_anchors(chain, chain.calibration, state)
    return chain.anchor(state, {model: (estimate.bias, sd) for model, estimate in anchors.items()})


def test_chain_feeds_predictions_forward_from_its_anchors(chain, bundle, make_states):
    state = make_states(1)[0]
    anchor = _anchored(chain, state)
    U = np.array([[state["t1"], state["o2"]], [101.0, 2.5]])
    ev = chain.evaluate(U, state, anchor)
    feed = [state["feed"]] * 2
    raw_1 = bundle.gams["stage_1"].predict(np.column_stack([U[:, 0], U[:, 1], feed]))
    m1 = state["m1"] + raw_1 - raw_1[0]  # anchored: measured + the model's change
    raw_2 = bundle.gams["stage_2"].predict(np.column_stack([m1, U[:, 1], feed]))
    m2 = state["m2"] + raw_2 - raw_2[0]
    assert np.allclose(ev.values[:, 0], m1, atol=1e-9) and np.allclose(ev.values[:, 1], m2, atol=1e-9)
    assert np.allclose(ev.change[0], 0.0, atol=1e-12) and np.allclose(ev.change_variance[0], 0.0, atol=1e-18)
    # at the current state the level's uncertainty is the anchor's own
    assert np.allclose(ev.level_variance[0], 0.05**2)


def test_chain_gradients_match_finite_differences(chain, make_states):
    state = make_states(1)[0]
    anchor = _anchored(chain, state)
    u = np.array([[state["t1"] + 0.7, state["o2"] - 0.2]])
    ev = chain.evaluate(u, state, anchor)
    h = 1e-6
    for i in range(2):
        step = np.zeros((1, 2))
        step[0, i] = h
        up, down = chain.evaluate(u + step, state, anchor), chain.evaluate(u - step, state, anchor)
        assert np.allclose(ev.gradient[0, :, i], (up.values - down.values)[0] / (2 * h), atol=1e-5)
        # the sensitivities between models are treated as constant: close, not exact
        for name in ("level_variance", "change_variance"):
            numeric = (getattr(up, name) - getattr(down, name))[0] / (2 * h)
            analytic = getattr(ev, f"{name}_gradient")[0, :, i]
            assert np.allclose(analytic, numeric, rtol=0.25, atol=1e-6), name


def test_variance_of_the_change_matches_sampling_the_coefficients(chain, bundle, make_states):
    """Delta method on the compiled chain against Monte Carlo over every GAM's coefficients and the
    anchor (where the anchor sits on a curved model changes the downstream change too)."""
    state = make_states(1)[0]
    anchor = _anchored(chain, state)
    u = np.array([state["t1"] + 2.0, state["o2"] + 0.5])
    ev = chain.evaluate(u[None, :], state, anchor)
    rng = np.random.default_rng(7)
    gam_1, gam_2 = chain.gam("stage_1"), chain.gam("stage_2")
    draws = 4000
    beta_1 = rng.multivariate_normal(gam_1.coef, gam_1.cov, draws, method="eigh")
    beta_2 = rng.multivariate_normal(gam_2.coef, gam_2.cov, draws, method="eigh")
    x0 = np.array([[state["t1"], state["o2"], state["feed"]], [u[0], u[1], state["feed"]]])
    m1_rows = gam_1.design(x0)
    change_1 = beta_1 @ (m1_rows[1] - m1_rows[0])
    m1_anchor = state["m1"] + rng.normal(0.0, 0.05, draws)
    rows_2 = np.column_stack([m1_anchor + change_1, np.full(draws, u[1]), np.full(draws, state["feed"])])
    rows_0 = np.column_stack([m1_anchor, np.full(draws, state["o2"]), np.full(draws, state["feed"])])
    change_2 = np.einsum("np,np->n", gam_2.design(rows_2) - gam_2.design(rows_0), beta_2)
    assert np.sqrt(ev.change_variance[0, 0]) == pytest.approx(change_1.std(), rel=0.05)
    assert np.sqrt(ev.change_variance[0, 1]) == pytest.approx(change_2.std(), rel=0.1)
    # the slope's uncertainty is what a comparison of two bounds cannot see: it grows with the move
    small = chain.evaluate(np.array([[state["t1"] + 0.5, state["o2"]]]), state, anchor)
    assert small.change_variance[0, 0] < ev.change_variance[0, 0]


def test_unanchored_model_keeps_its_prediction_and_interval(chain, bundle, make_states):
    state = {k: v for k, v in make_states(1)[0].items() if k != "m2"}
    anchor = _anchored(chain, state)  # stage_1 only: the state has no m2
    ev = chain.evaluate(np.array([[state["t1"], state["o2"]]]), state, anchor)
    raw = bundle.gams["stage_2"].predict(np.array([[state["m1"], state["o2"], state["feed"]]]))
    assert ev.values[0, 1] == pytest.approx(raw[0])
    own_se = chain.gam("stage_2").standard_error(np.array([[state["m1"], state["o2"], state["feed"]]]))
    # coefficient uncertainty + residual scale + the upstream anchor's, nothing less
    assert ev.level_variance[0, 1] > own_se[0] ** 2 + chain.scales[1] ** 2


def test_compiled_forest_matches_score_samples():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 4))
    for max_features in (1.0, 0.5):
        forest = IsolationForest(n_estimators=30, max_features=max_features, random_state=0).fit(X)
        rows = np.vstack([X[:50], rng.normal(0, 3, (100, 4))])
        assert np.max(np.abs(CompiledForest(forest).scores(rows) + forest.score_samples(rows))) < 1e-9


def test_gate_blocks_with_reason_and_far_tags(bundle, make_states):
    gate = Gate(bundle.detectors, bundle.baselines)
    assert gate.check(make_states(1)[0]).passed
    odd = dict(make_states(1)[0], feed=250.0, m1=60.0)
    result = gate.check(odd)
    assert not result.passed
    assert {t.tag for t in result.far_tags[result.flagged[0]][:2]} <= {"feed", "m1"}
    assert "m1" in result.reason() and "threshold" in result.reason()


def test_a_block_on_a_derived_feature_names_the_tags_it_is_computed_from():
    """An operator cannot act on 'air_per_feed': the answer names air and feed and which way each is off."""
    import pandas as pd

    from dragon.drift import compute_baselines
    from dragon.features import compile_derived
    from dragon.spec import DetectorSpec
    from training.detectors import fit_detector

    rng = np.random.default_rng(6)
    feed = rng.uniform(150, 250, 1500)
    train = pd.DataFrame({"feed": feed, "air": feed * 0.12 * (1 + rng.normal(0, 0.01, 1500))})
    derived = {"air_per_feed": compile_derived("air_per_feed", "air / feed", ["feed", "air"])}
    spec = DetectorSpec(name="air", features=["air_per_feed", "feed"], n_estimators=50)
    gate = Gate(
        {"air": fit_detector(spec, train, derived=derived)}, compute_baselines(train, ["feed", "air"])
    )
    result = gate.check({"feed": 230.0, "air": 20.0})  # each tag in its range, their ratio far below it
    assert result.flagged == ["air"]
    far = {t.tag: t for t in result.far_tags["air"]}
    assert set(far) == {"air", "feed"}  # the tags, never only the computed feature
    assert far["air"].moves == {"air_per_feed": "lowers"} and far["air"].z_score < 0
    assert far["feed"].moves == {"air_per_feed": "lowers"} and far["feed"].z_score > 0
    reason = result.reason()
    assert "air_per_feed = 0.08696, below its training range" in reason
    assert "(computed from air, feed)" in reason
    assert "sd below its training mean; lowers air_per_feed" in reason


def test_gate_refuses_a_detector_that_does_not_compile(bundle):
    broken = dict(bundle.detectors)
    name, detector = next(iter(broken.items()))
    broken[name] = type(detector)(name, detector.features[:-1], detector.forest, detector.threshold, 0.01)
    with pytest.raises(BundleError):
        Gate(broken, bundle.baselines)


def test_a_state_estimate_input_is_held_at_its_current_value(history, make_states):
    """A derived model input (here stage_2 reads a load estimate made of t1, a setpoint) describes the
    plant, not the move: the chain evaluates it from the current state and holds it."""
    from two_stage_plant import PLANT, calibration, fit_plant

    from dragon.features import add_derived
    from dragon.spec import parse_plant

    text = PLANT.replace('features = ["m1", "o2", "feed"]', 'features = ["m1", "o2", "load"]')
    spec = parse_plant(text + '\n[derived.load]\nexpression = "feed * t1 / 100"\n', "<estimate plant>")
    assert spec.model_derived_inputs == ["load"] and "feed" in spec.required_state_tags
    gams, _, _ = fit_plant(spec, add_derived(history, spec.derived_features))
    chain = CompiledChain(spec, gams, calibration(spec))
    state = make_states(1)[0]
    anchor = chain.anchor(state, {})
    U = np.array([[state["t1"], state["o2"]], [state["t1"] + 2.0, state["o2"] - 0.3]])
    ev = chain.evaluate(U, state, anchor)
    m1 = gams["stage_1"].predict(np.column_stack([U[:, 0], U[:, 1], [state["feed"]] * 2]))
    held = state["feed"] * state["t1"] / 100
    m2 = gams["stage_2"].predict(np.column_stack([m1, U[:, 1], [held, held]]))
    assert np.allclose(ev.values[:, 1], m2, atol=1e-9)
    step = 1e-5  # the held input adds nothing to the gradient wrt t1
    up = chain.evaluate(U[1:] + [step, 0.0], state, anchor).values[0, 1]
    down = chain.evaluate(U[1:] - [step, 0.0], state, anchor).values[0, 1]
    assert ev.gradient[1, 1, 0] == pytest.approx((up - down) / (2 * step), rel=1e-4, abs=1e-7)
    from optimizer.anchor import estimate_anchors

    assert set(estimate_anchors(chain, calibration(spec), state)) == {"stage_1", "stage_2"}  # both anchored
