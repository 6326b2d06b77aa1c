"""The HTTP contract (ARCHITECTURE.md) against the real server over loopback."""

from __future__ import annotations

import csv
import io
import json

import httpx

from inference.schemas import ExecutionParameters, Ping, Predictions, Recommendation


def test_every_worker_pings_with_the_model_version(server):
    pings = []
    for _ in range(12):  # a new connection each time, so both workers answer
        response = httpx.get(f"{server.url}/ping", timeout=10)
        assert response.status_code == 200
        assert response.headers["X-Model-Version"] == server.model_version
        pings.append(Ping.model_validate(response.json()))
    assert {ping.model_version for ping in pings} == {server.model_version}
    assert all(ping.capture.enabled for ping in pings)


def test_execution_parameters_for_batch_transform(client, server):
    response = client.get("/execution-parameters")
    assert response.status_code == 200
    params = ExecutionParameters.model_validate(response.json())
    assert params.BatchStrategy == "MULTI_RECORD"
    assert params.MaxPayloadInMB == server.payload_mb
    assert params.MaxConcurrentTransforms == server.workers == 2


def test_one_state_gets_one_recommendation(client, server, good_state):
    response = client.post("/invocations", json={"state": good_state})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["X-Model-Version"] == server.model_version
    recommendation = Recommendation.model_validate(response.json())
    assert recommendation.model_version == server.model_version
    if recommendation.status == "recommended":
        assert recommendation.setpoints
    if recommendation.status == "blocked":  # a detector flagged it, or a sensor disagrees with its model
        body = response.json()
        assert any(check.anomalous for check in recommendation.anomaly.values()) or any(
            not check["consistent"] for check in body["consistency"]
        ), body["reason"]


def test_instances_are_answered_in_order(client, server, good_states):
    single = [client.post("/invocations", json={"state": s}).json() for s in good_states]
    response = client.post("/invocations", json={"instances": good_states})
    assert response.status_code == 200
    answers = Predictions.model_validate(response.json())
    assert answers.model_version == server.model_version
    assert response.json()["predictions"] == single


def test_json_lines_in_and_out(client, server, good_states):
    body = "".join(json.dumps(s) + "\n" for s in good_states[:3])
    response = client.post(
        "/invocations",
        content=body,
        headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jsonlines")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) == 3
    assert all(line["model_version"] == server.model_version for line in lines)


def test_csv_in_and_out(client, server, good_states):
    tags = list(good_states[0])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=tags)
    writer.writeheader()
    writer.writerows(good_states)
    response = client.post(
        "/invocations", content=out.getvalue(), headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == len(good_states)
    assert {row["status"] for row in rows} <= {"recommended", "hold", "blocked"}
    assert all(row["model_version"] == server.model_version for row in rows)


def test_headerless_csv_uses_the_plant_tag_order(client, server, good_state, loaded_bundle):
    """SageMaker batch transform splits files by line: only the first mini-batch has the header."""
    order = loaded_bundle.spec.required_state_tags
    line = ",".join(str(good_state[tag]) for tag in order)
    response = client.post("/invocations", content=f"{line}\n{line}\n", headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 2


def test_accept_any_answers_json(client, server, good_state):
    response = client.post("/invocations", json={"state": good_state}, headers={"Accept": "*/*"})
    assert response.status_code == 200
    assert response.json()["model_version"] == server.model_version


def test_openapi_schema_documents_the_routes(client, server):
    schema = client.get("/openapi.json").json()
    assert {"/ping", "/execution-parameters", "/invocations"} <= set(schema["paths"])
    request_types = schema["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/jsonlines", "text/csv"} <= set(request_types)


def _timed_rows(small_history, spec) -> list[dict]:
    """The history's complete rows as a historian client sends them (ISO times), oldest first."""
    import pandas as pd

    frame = pd.read_parquet(small_history)
    tags = [tag for tag in spec.tags if tag in frame]
    rows = frame[[spec.time_column, *tags]].dropna()
    return [
        {spec.time_column: row[spec.time_column].isoformat(), **{tag: float(row[tag]) for tag in tags}}
        for _, row in rows.iterrows()
    ]


def test_a_state_with_its_recent_window_is_anchored_on_the_window(client, small_history, loaded_bundle):
    rows = _timed_rows(small_history, loaded_bundle.spec)
    for end in range(len(rows) // 2, len(rows), 97):  # a state the detectors pass (not in an episode)
        window = rows[end - 19 : end]
        response = client.post("/invocations", json={"state": rows[end], "recent": window})
        assert response.status_code == 200, response.text
        recommendation = Recommendation.model_validate(response.json())
        if recommendation.status != "blocked":
            break
    assert recommendation.status != "blocked", recommendation.reason
    assert recommendation.anchors and all(
        a.method.startswith("window mean") and a.rows > 1 for a in recommendation.anchors.values()
    )
    # the same window unsorted: one 400 naming the row
    shuffled = client.post("/invocations", json={"state": rows[end], "recent": window[::-1]})
    assert shuffled.status_code == 400, shuffled.text
    assert "recent[1]" in shuffled.text and "not after the row before it" in shuffled.text
