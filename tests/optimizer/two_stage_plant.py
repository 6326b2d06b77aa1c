"""A small two-model chain plant fitted directly with pygam and sklearn (no training package).

stage_1 (target m1) reads the setpoints t1, o2 and the disturbance feed, with a t1 x o2 tensor
term and a monotonic t1 spline; stage_2 (target m2) reads m1 (a chain link), o2 and feed. The
objective maximises m2, whose optimum in m1 lies above m1's 95 % upper limit, so the constraint
binds on many states.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from dragon.bundle import Detector
from dragon.calibration import Calibration, ModelCalibration

PLANT = """
[plant]
name = "two-stage"

[tags.t1]
role = "setpoint"
valid = [0.0, 200.0]
bounds = [92.0, 108.0]
max_move = 2.0

[tags.o2]
role = "setpoint"
valid = [0.0, 21.0]
bounds = [1.5, 4.5]
max_move = 0.5

[tags.feed]
role = "disturbance"
valid = [0.0, 300.0]

[tags.m1]
role = "measurement"
valid = [0.0, 100.0]

[tags.m2]
role = "measurement"
valid = [0.0, 200.0]

[models.stage_1]
target = "m1"
features = ["t1", "o2", "feed"]
interactions = [["t1", "o2"]]
shape = { t1 = "monotonic_inc" }
n_splines = 8

[models.stage_2]
target = "m2"
features = ["m1", "o2", "feed"]
n_splines = 8

[detectors.oxidation]
features = ["t1", "o2", "feed", "m1"]

[detectors.product]
features = ["m1", "m2", "feed"]

[objective]
maximize = "stage_2"

[[constraints]]
model = "stage_1"
max = 14.0
confidence = 0.95

[[constraints]]
model = "stage_2"
min = "current"
tolerance = 0.5
confidence = 0.5

[optimizer]
min_benefit = 0.01
starts = 4
"""

NOISE = 0.1


def true_m1(t1, o2, feed):
    return (
        10
        + 0.3 * (t1 - 100)
        + 1.0 * (o2 - 3)
        - 0.4 * (o2 - 3) ** 2
        + 0.05 * (feed - 100)
        + 0.05 * (t1 - 100) * (o2 - 3)
    )


def true_m2(m1, o2, feed):
    return 80 - 0.5 * (m1 - 15) ** 2 + 0.8 * (o2 - 3) - 0.6 * (o2 - 3) ** 2 - 0.02 * (feed - 100)


def simulate(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    t1 = rng.uniform(92, 108, n)
    o2 = rng.uniform(1.5, 4.5, n)
    feed = rng.uniform(85, 115, n)
    m1 = true_m1(t1, o2, feed) + rng.normal(0, NOISE, n)
    m2 = true_m2(m1, o2, feed) + rng.normal(0, NOISE, n)
    return {"t1": t1, "o2": o2, "feed": feed, "m1": m1, "m2": m2}


def fit_plant(spec, data, seed: int = 0):
    from pygam import LinearGAM, s, te
    from sklearn.ensemble import IsolationForest

    gams = {}
    for name, model in spec.models.items():
        column = {f: i for i, f in enumerate(model.features)}
        terms = s(0, n_splines=model.n_splines, constraints=model.shape.get(model.features[0]))
        for f in model.features[1:]:
            terms = terms + s(column[f], n_splines=model.n_splines)
        for a, b in model.interactions:
            terms = terms + te(column[a], column[b], n_splines=5)
        X = np.column_stack([data[f] for f in model.features])
        gams[name] = LinearGAM(terms).fit(X, data[model.target])
    detectors = {}
    for name, det in spec.detectors.items():
        X = np.column_stack([data[f] for f in det.features])
        forest = IsolationForest(n_estimators=50, random_state=seed).fit(X)
        threshold = float(np.quantile(-forest.score_samples(X), 0.995))
        detectors[name] = Detector(name, list(det.features), forest, threshold, det.contamination)
    baselines = {
        tag: SimpleNamespace(mean=float(np.mean(v)), std=float(np.std(v))) for tag, v in data.items()
    }
    return gams, detectors, baselines


def calibration(spec) -> Calibration:
    """The two-stage plant's calibration: its GAMs' own intervals (independent noise, so scale 1) and the
    simulated measurement noise."""
    models = {
        name: ModelCalibration(
            interval_scale=1.0,
            covariance_scale=1.0,
            residual_autocorrelation=0.0,
            state_residual_sd=NOISE * 2,
            coverage_raw=0.95,
            coverage_calibrated=0.95,
            holdout_rows=0,
        )
        for name in spec.models
    }
    return Calibration(models=models, measurement_noise=dict.fromkeys(spec.tags, NOISE))


def normal_states(n: int, seed: int = 3, inner: float = 1.0) -> list[dict[str, float]]:
    """Plant states inside the training region, measured targets included."""
    rng = np.random.default_rng(seed)
    data = simulate(rng, n)
    states = []
    for i in range(n):
        t1 = 100 + (data["t1"][i] - 100) * inner
        o2 = 3 + (data["o2"][i] - 3) * inner
        feed = 100 + (data["feed"][i] - 100) * inner
        m1 = true_m1(t1, o2, feed)
        states.append({"t1": t1, "o2": o2, "feed": feed, "m1": m1, "m2": true_m2(m1, o2, feed)})
    return states
