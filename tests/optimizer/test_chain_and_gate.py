import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from dragon.errors import BundleError
from optimizer.chain import CompiledChain
from optimizer.gate import CompiledForest, Gate


@pytest.fixture(scope="module")
def chain(bundle):
    return CompiledChain.from_bundle(bundle)


def test_chain_feeds_predictions_forward(chain, bundle, make_states):
    state = make_states(1)[0]
    U = np.array([[state["t1"], state["o2"]], [101.0, 2.5]])
    ev = chain.evaluate(U, state)
    m1 = bundle.gams["stage_1"].predict(np.column_stack([U[:, 0], U[:, 1], [state["feed"]] * 2]))
    m2 = bundle.gams["stage_2"].predict(np.column_stack([m1, U[:, 1], [state["feed"]] * 2]))
    assert np.allclose(ev.values[:, 0], m1, atol=1e-9) and np.allclose(ev.values[:, 1], m2, atol=1e-9)


def test_chain_gradients_match_finite_differences(chain, make_states):
    state = make_states(1)[0]
    u = np.array([[state["t1"], state["o2"]]])
    ev = chain.evaluate(u, state)
    h = 1e-6
    for i in range(2):
        step = np.zeros((1, 2))
        step[0, i] = h
        up, down = chain.evaluate(u + step, state), chain.evaluate(u - step, state)
        assert np.allclose(ev.gradient[0, :, i], (up.values - down.values)[0] / (2 * h), atol=1e-5)
        bound_up = up.bound("stage_2", 0.95, "upper")[0]
        bound_down = down.bound("stage_2", 0.95, "upper")[0]
        # variance sensitivities are treated as constant: close, not exact
        assert np.allclose(
            ev.bound("stage_2", 0.95, "upper")[1][0, i],
            (bound_up - bound_down)[0] / (2 * h),
            rtol=1e-2,
            atol=1e-4,
        )


def test_variance_propagates_upstream_uncertainty(chain, make_states):
    state = make_states(1)[0]
    ev = chain.evaluate(np.array([[state["t1"], state["o2"]]]), state)
    own_se = chain.gam("stage_2").standard_error(np.array([[ev.values[0, 0], state["o2"], state["feed"]]]))
    assert ev.variance[0, 1] > own_se[0] ** 2


def test_bias_update_reproduces_measurements(chain, make_states):
    state = dict(make_states(1)[0], m1=11.0, m2=70.0)
    biases = chain.biases(state)
    ev = chain.evaluate(np.array([[state["t1"], state["o2"]]]), state, biases)
    assert np.allclose(ev.values[0], [11.0, 70.0], atol=1e-9)
    unmeasured = {k: v for k, v in state.items() if k != "m2"}
    assert chain.biases(unmeasured)[1] == 0.0


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


def test_gate_refuses_a_detector_that_does_not_compile(bundle):
    broken = dict(bundle.detectors)
    name, detector = next(iter(broken.items()))
    broken[name] = type(detector)(name, detector.features[:-1], detector.forest, detector.threshold, 0.01)
    with pytest.raises(BundleError):
        Gate(broken, bundle.baselines)
