"""Derived features: safe expressions over tags, evaluated on frames, column mappings and single states."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dragon.errors import DataError, SpecError
from dragon.features import compile_derived, feature_table
from dragon.spec import parse_plant

PLANT = """
[plant]
name = "small"

[tags.heater]
role = "setpoint"
valid = [0.0, 200.0]
bounds = [50.0, 150.0]
max_move = 2.0

[tags.feed]
role = "disturbance"
valid = [0.0, 100.0]

[tags.outlet]
role = "measurement"
valid = [0.0, 200.0]

[models.outlet]
target = "outlet"
features = ["heater", "feed"]

[objective]
maximize = "outlet"
"""

APPROACH = """
[derived.approach]
expression = "(outlet - heater) / feed"

[derived.mixed]
expression = "-sqrt(abs(heater - outlet)) + log(feed) * 2 ** 2 + max(heater, outlet) - min(1, feed)"

[detectors.unit]
features = ["approach", "feed"]
"""


def spec_with(extra: str):
    return parse_plant(PLANT + extra, "plant.toml")


def test_expressions_evaluate_alike_on_frames_column_mappings_and_states():
    spec = spec_with(APPROACH)
    derived = spec.derived_features
    frame = pd.DataFrame({"heater": [100.0, 90.0], "feed": [10.0, 20.0], "outlet": [120.0, 80.0]})
    added = feature_table(frame, ["approach", "mixed"], derived)
    assert added[:, 0] == pytest.approx([2.0, -0.5])
    mixed = (
        -np.sqrt(np.abs(frame.heater - frame.outlet))
        + np.log(frame.feed) * 4
        + np.maximum(frame.heater, frame.outlet)
        - np.minimum(1, frame.feed)
    )
    assert added[:, 1] == pytest.approx(mixed.to_numpy())

    state = {"heater": 100.0, "feed": 10.0, "outlet": 120.0}
    one = feature_table(state, ["approach", "mixed"], derived)
    assert one.shape == (1, 2) and one[0] == pytest.approx([2.0, mixed.iloc[0]])
    columns = feature_table({k: frame[k].to_numpy() for k in frame}, ["approach"], derived)
    assert columns[:, 0] == pytest.approx([2.0, -0.5])

    assert derived["approach"].inputs == ("outlet", "heater", "feed")
    assert feature_table(state, ["approach", "feed"], derived).tolist() == [[2.0, 10.0]]
    assert feature_table(frame, ["approach", "feed"], derived)[:, 0] == pytest.approx([2.0, -0.5])


def test_undefined_values_are_nan_in_both_paths():
    feature = compile_derived("r", "log(a) / b", ["a", "b"])
    assert math.isnan(feature.evaluate_state({"a": -1.0, "b": 1.0}))
    assert math.isinf(feature.evaluate_state({"a": 2.0, "b": 0.0})) or math.isnan(
        feature.evaluate_state({"a": 2.0, "b": 0.0})
    )
    values = feature.evaluate_columns({"a": np.array([-1.0, math.e]), "b": np.array([1.0, 1.0])})
    assert math.isnan(values[0]) and values[1] == pytest.approx(1.0)


def test_missing_input_tag_is_a_data_error_naming_the_tag():
    with pytest.raises(DataError, match="feed"):
        feature_table({"heater": 1.0, "outlet": 2.0}, ["approach"], spec_with(APPROACH).derived_features)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("__import__('os').system('true')", "call to '__import__('os').system' is not allowed"),
        ("__import__('os')", "call to '__import__' is not allowed"),
        ("heater.real + 1", "Attribute"),
        ("open(heater)", "call to 'open' is not allowed"),
        ("heater[0]", "Subscript"),
        ("heater if feed else outlet", "IfExp"),
        ("(lambda: 1)()", "is not allowed"),
        ("'abc'", "constant 'abc' is not a number"),
        ("heater > feed", "Compare"),
        ("max(heater)", "max() takes 2 positional argument"),
        ("heater +", "not a valid expression"),
        ("heater % 2", "operator Mod is not allowed"),
    ],
)
def test_unsafe_or_invalid_expressions_are_spec_errors_naming_the_key(expression, problem):
    with pytest.raises(SpecError) as error:
        spec_with(f'[derived.x]\nexpression = "{expression}"\n')
    assert any(p.startswith("[derived.x] expression:") and problem in p for p in error.value.problems), (
        error.value.problems
    )


def test_all_derived_problems_are_reported_at_once():
    extra = """
[derived.x]
expression = "heaterr - feed + colder"

[derived.feed]
expression = "heater * 2"

[models.other]
target = "outlet"
features = ["x", "heater"]

[detectors.unit]
features = ["x", "nowhere"]
"""
    with pytest.raises(SpecError) as error:
        spec_with(extra)
    problems = error.value.problems
    assert "[derived.x] expression: unknown tag 'heaterr'" in problems
    assert "[derived.x] expression: unknown tag 'colder'" in problems
    assert any(p.startswith("[derived.feed]: 'feed' is already a tag") for p in problems)
    assert "[detectors.unit] features: unknown tag or derived feature 'nowhere'" in problems


def test_a_model_may_read_a_state_estimate_but_not_one_made_of_its_answer():
    estimate = """
[tags.steam]
role = "measurement"
valid = [0.0, 300.0]

[tags.product]
role = "measurement"
valid = [0.0, 300.0]

[derived.duty]
expression = "feed / (steam - heater)"

[models.product]
target = "product"
features = ["outlet", "duty"]
"""
    spec = spec_with(estimate.replace('features = ["heater", "feed"]', ""))
    assert spec.model_derived_inputs == ["duty"]
    assert {"steam", "heater", "feed"} <= set(spec.required_state_tags)
    leaking = estimate.replace('"feed / (steam - heater)"', '"product / (steam - heater)"')
    with pytest.raises(SpecError) as error:
        spec_with(leaking)
    assert error.value.problems == [
        "[models.product] features: derived feature 'duty' reads product, which the model predicts (its own "
        "target or one downstream of it); a model input may not contain its answer"
    ]
    upstream = PLANT.replace('features = ["heater", "feed"]', 'features = ["heater", "feed", "duty"]')
    with pytest.raises(SpecError, match=r"\[models.outlet\] features: derived feature 'duty' reads product"):
        parse_plant(upstream + leaking, "plant.toml")  # product is downstream of outlet


def test_detectors_may_read_derived_features_and_their_tags_become_required():
    spec = spec_with(APPROACH)
    assert spec.detectors["unit"].features == ["approach", "feed"]
    assert set(spec.required_state_tags) == {"heater", "feed", "outlet"}
    assert "outlet" in spec.used_tags


def test_state_evaluation_is_fast():
    import time

    feature = spec_with(APPROACH).derived_features["approach"]
    state = {"heater": 100.0, "feed": 10.0, "outlet": 120.0}
    started = time.perf_counter()
    for _ in range(2000):
        feature.evaluate_state(state)
    assert (time.perf_counter() - started) / 2000 < 50e-6  # microseconds, with room for a busy machine
