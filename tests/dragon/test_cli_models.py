"""`dragon models list` as a user reads it: one line per version at 80 columns, no raw JSON."""

from __future__ import annotations

from console import run_dragon


def test_models_list_is_one_line_per_version_at_80_columns(
    dragon_home, trained_bundle, loaded_bundle, tmp_path
):
    from dragon.registry import APPROVAL_TAG, CHAMPION, deployed_tag, set_alias, set_tag
    from dragon.settings import load_settings
    from training.catalog import record_training

    settings = load_settings()
    first = record_training(settings, trained_bundle)
    second = record_training(settings, trained_bundle)
    plant = loaded_bundle.spec.name
    set_tag(settings, plant, second["version"], APPROVAL_TAG, "approved")
    set_tag(settings, plant, second["version"], deployed_tag("dev"), "true")
    set_tag(settings, plant, second["version"], deployed_tag("prod"), "true")
    set_alias(settings, plant, CHAMPION, second["version"])

    result = run_dragon("models", "list", cwd=tmp_path, DRAGON_HOME=str(dragon_home), COLUMNS="80")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    assert "{" not in result.stdout  # no raw tag or metric JSON
    rows = {line.split()[0]: line for line in lines if line.split() and line.split()[0].isdigit()}
    assert set(rows) == {first["version"], second["version"]}
    newest = rows[second["version"]]
    assert "champion" in newest and "approved" in newest and "dev, prod" in newest and "passed" in newest
    recall = first["gate"]["recall"]
    assert f"{100 * recall:.1f} %" in newest
    assert rows[first["version"]].split()[1:5] == ["-", "-", "passed", "-"]

    # `models show`: an error metric carries its target's unit, a row count is a whole number
    shown = run_dragon("models", "show", second["version"], cwd=tmp_path, DRAGON_HOME=str(dragon_home))
    assert shown.returncode == 0, shown.stderr
    spec = loaded_bundle.spec
    name = spec.model_order[0]
    (rmse,) = [line for line in shown.stdout.splitlines() if f"models.{name}.rmse " in line]
    assert f" {spec.tags[spec.models[name].target].unit} " in rmse
    (rows_in,) = [line for line in shown.stdout.splitlines() if "data.rows_in " in line]
    assert f"{first['data']['rows_in']:,}" in rows_in
