"""Plant spec validation: each mistake named with file, table and key; all mistakes at once."""

from __future__ import annotations

import pytest

from dragon.errors import SpecError
from dragon.spec import load_plant, parse_plant

SMALL_PLANT = """
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

[tags.conversion]
role = "measurement"
valid = [0.0, 100.0]

[tags.purity]
role = "measurement"
valid = [0.0, 100.0]

[models.reactor]
target = "conversion"
features = ["heater", "feed"]

[models.column]
target = "purity"
features = ["conversion", "heater"]

[objective]
maximize = "column"

[[constraints]]
model = "reactor"
max = 90.0
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as error:
        parse_plant(text, "bad.toml")
    assert str(error.value).startswith("bad.toml")
    return error.value.problems


def test_the_small_plant_and_the_shipped_plant_are_valid():
    spec = parse_plant(SMALL_PLANT, "small.toml")
    assert spec.model_order == ["reactor", "column"]
    shipped = load_plant()
    assert shipped.model_order == ["oxidation_1", "oxidation_2", "concentration", "yield"]


def test_the_default_plant_has_two_isolation_forests_next_to_its_four_gams():
    shipped = load_plant()
    assert len(shipped.models) == 4
    assert sorted(shipped.detectors) == ["concentration", "oxidation"]  # one per plant section


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'features = ["heater", "feed"]',
            'features = ["heater", "feed_rate"]',
            "[models.reactor] features: unknown tag or derived feature 'feed_rate'",
        ),
        (
            'target = "conversion"',
            'target = "feed"',
            "[models.reactor] target: 'feed' is a disturbance, a model target must be a measurement",
        ),
        (
            'features = ["heater", "feed"]',
            'features = ["heater", "purity"]',
            "[models] the model chain has a cycle",
        ),
        ("bounds = [50.0, 150.0]\n", "", "[tags.heater] bounds: a setpoint needs bounds"),
        ("max_move = 2.0\n", "", "[tags.heater] max_move: a setpoint needs max_move"),
        (
            "bounds = [50.0, 150.0]",
            "bounds = [50.0, 250.0]",
            "[tags.heater] bounds: [50.0, 250.0] lies outside the valid range [0.0, 200.0]",
        ),
        ('model = "reactor"', 'model = "reactr"', "[[constraints]] #1 model: unknown model 'reactr'"),
        ('maximize = "column"', 'maximize = "colum"', "[objective] maximize: unknown model 'colum'"),
        ("[tags.purity]", "[tags.feed]", "duplicate table [tags.feed]"),
        ('role = "disturbance"', 'role = "disturbanse"', "[tags.feed.role]"),
    ],
)
def test_each_mistake_is_named_with_table_and_key(old, new, expected):
    assert old in SMALL_PLANT
    problems = problems_of(SMALL_PLANT.replace(old, new, 1))
    assert any(expected in problem for problem in problems), problems


def test_cycle_names_the_models_in_it():
    text = SMALL_PLANT.replace('features = ["heater", "feed"]', 'features = ["heater", "purity"]')
    (cycle,) = [p for p in problems_of(text) if "cycle" in p]
    assert "reactor" in cycle and "column" in cycle


def test_every_mistake_of_a_file_is_reported_at_once():
    text = (
        SMALL_PLANT.replace('features = ["heater", "feed"]', 'features = ["heater", "feed_rate"]')
        .replace("max_move = 2.0\n", "")
        .replace("bounds = [50.0, 150.0]", "bounds = [50.0, 250.0]")
        .replace('model = "reactor"', 'model = "reactr"')
        .replace('maximize = "column"', 'maximize = "colum"')
    )
    problems = problems_of(text)
    for expected in (
        "[models.reactor] features",
        "[tags.heater] max_move",
        "[tags.heater] bounds",
        "[[constraints]] #1 model",
        "[objective] maximize",
    ):
        assert any(expected in problem for problem in problems), (expected, problems)


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError) as error:
        load_plant(tmp_path / "nowhere.toml")
    assert "nowhere.toml" in str(error.value) and "not found" in str(error.value)
