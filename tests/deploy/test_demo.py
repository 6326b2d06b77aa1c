"""The demo's endpoint step: answers read back through the published contract, shown with units, scored
against the simulator's oracle (deploy/demo.py)."""

from __future__ import annotations

import pandas as pd


def test_the_demo_reads_the_endpoints_answers_as_the_contract(
    trained_bundle, small_history, tmp_path, monkeypatch
):
    from rich.console import Console
    from serving import start_server, stop_server

    from deploy import demo
    from dragon.spec import load_plant
    from optimizer.recommendation import Recommendation

    history = pd.read_parquet(small_history)
    truth = pd.read_parquet(small_history.with_name("history.truth.parquet")).drop(columns=["timestamp"])
    steady = (truth["steady"].to_numpy() & (history["episode"] == "").to_numpy()).nonzero()[0]
    rows = steady[[len(steady) // 4, len(steady) // 2, 3 * len(steady) // 4]]
    states = pd.concat(
        [history.iloc[rows].reset_index(drop=True), truth.iloc[rows].reset_index(drop=True)], axis=1
    )

    server = start_server(trained_bundle, tmp_path)
    try:
        answers = demo.ask_endpoint(server.url, states)
    finally:
        stop_server(server)
    assert len(answers) == 3 and all(isinstance(a, Recommendation) for a in answers)

    monkeypatch.setattr(demo, "console", Console(record=True, width=200))
    demo.show_answers(answers)
    scored = demo.score_against_oracle(answers, states)
    text = demo.console.export_text()
    spec = load_plant()
    objective_unit = spec.tags[spec.models[spec.objective.model].target].unit
    for answer in answers:
        assert f"{answer.status}[/]" not in text and f"{answer.status} version" in text
    assert f" {objective_unit}, " in text or f" {objective_unit} —" in text
    assert scored["violations"] == 0
