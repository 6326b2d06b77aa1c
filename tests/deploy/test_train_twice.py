"""Training twice in a row through the local pipeline: the registry keeps both versions, each with its
own run, bundle and records, and the first one's champion alias and records are left as they were."""

from __future__ import annotations

from pathlib import Path

from console import run_dragon

MINI_REACTOR = Path(__file__).parents[1] / "plants" / "mini_reactor" / "plant.toml"


def test_two_trainings_in_a_row_keep_both_versions_and_the_champion(
    mini_reactor, mini_reactor_history, dragon_home, tmp_path
):
    from dragon.bundle import load_bundle
    from dragon.registry import CHAMPION, list_versions, resolve_bundle
    from dragon.settings import load_settings

    settings = load_settings()
    command = ["pipeline", "train", "--data", str(mini_reactor_history), "--plant", str(MINI_REACTOR)]
    first = run_dragon(*command, cwd=tmp_path, DRAGON_HOME=str(dragon_home), timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    (v1,) = list_versions(settings, mini_reactor.name)
    said = " ".join(first.stdout.split())
    assert "hold-out figures" in said and f"{mini_reactor.model_order[0]} " in said  # the summary table
    assert f"deploy it with: dragon pipeline deploy --version {v1.version}" in said
    second = run_dragon(*command, cwd=tmp_path, DRAGON_HOME=str(dragon_home), timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Traceback" not in first.stderr + second.stderr

    versions = {info.version: info for info in list_versions(settings, mini_reactor.name)}
    assert set(versions) == {"1", "2"}
    assert versions["1"].run_id != versions["2"].run_id
    # the first version's records are as the first training left them; the champion stays with it
    # (it moves on a deployment, not on a registration)
    assert versions["1"].tags == v1.tags and versions["1"].metrics == v1.metrics
    assert CHAMPION in versions["1"].aliases and CHAMPION not in versions["2"].aliases
    for version in ("1", "2"):  # each bundle still loads and verifies every hash
        path, resolved = resolve_bundle(settings, mini_reactor.name, version)
        assert resolved == version and load_bundle(path).spec.name == mini_reactor.name
