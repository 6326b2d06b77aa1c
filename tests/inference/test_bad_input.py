"""Bad input never gets a 5xx: each case is a 4xx naming the problem, or a per-record error in place,
and the server keeps serving afterwards."""

from __future__ import annotations

import json

import pytest


def _state_with(good_state, **changes):
    state = dict(good_state)
    for tag, value in changes.items():
        if value is _DROP:
            state.pop(tag)
        else:
            state[tag] = value
    return state


_DROP = object()
JSON = {"Content-Type": "application/json"}


def _tag(good_state, position=0):
    return sorted(good_state)[position]


# (case id, build body text from a good state, expected status, words the answer must contain)
STATE_CASES = [
    (
        "missing-tag",
        lambda s: json.dumps({"state": _state_with(s, **{_tag(s): _DROP})}),
        400,
        lambda s: ["missing", _tag(s)],
    ),
    (
        "unknown-tag",
        lambda s: json.dumps({"state": {**s, "reactor_colour": 1.0}}),
        400,
        lambda s: ["unknown", "reactor_colour"],
    ),
    (
        "nan",
        lambda s: json.dumps({"state": _state_with(s, **{_tag(s): float("nan")})}),
        400,
        lambda s: [_tag(s), "finite"],
    ),
    (
        "infinity",
        lambda s: json.dumps({"state": _state_with(s, **{_tag(s, 1): float("inf")})}),
        400,
        lambda s: [_tag(s, 1), "finite"],
    ),
    (
        "string",
        lambda s: json.dumps({"state": _state_with(s, **{_tag(s): "hot"})}),
        400,
        lambda s: [_tag(s), "not a number"],
    ),
    (
        "nested-junk",
        lambda s: json.dumps({"state": _state_with(s, **{_tag(s): {"a": [1, {"b": None}]}})}),
        400,
        lambda s: [_tag(s), "not a number"],
    ),
    (
        "null",
        lambda s: json.dumps({"state": _state_with(s, **{_tag(s): None})}),
        400,
        lambda s: [_tag(s), "null"],
    ),
    (
        "boolean",
        lambda s: json.dumps({"state": _state_with(s, **{_tag(s): True})}),
        400,
        lambda s: [_tag(s), "not a number"],
    ),
    (
        "outside-valid",
        lambda s: json.dumps({"state": _state_with(s, **{_tag(s): 1e9})}),
        400,
        lambda s: [_tag(s), "valid range"],
    ),
    ("state-not-object", lambda s: json.dumps({"state": [1, 2, 3]}), 400, lambda s: ["state"]),
    ("wrong-top-level-key", lambda s: json.dumps({"stat": s}), 400, lambda s: ["stat"]),
    ("top-level-list", lambda s: json.dumps([s]), 400, lambda s: ["expected"]),
    ("empty-instances", lambda s: json.dumps({"instances": []}), 400, lambda s: ["instances"]),
    ("junk", lambda s: "{this is not json", 400, lambda s: ["JSON"]),
    ("deep-nesting", lambda s: "[" * 100_000 + "]" * 100_000, 400, lambda s: ["JSON"]),
    ("huge-integer", lambda s: '{"state": {"x": ' + "9" * 20_000 + "}}", 400, lambda s: []),
    ("empty-body", lambda s: "", 400, lambda s: ["empty"]),
    ("whitespace-body", lambda s: "  \n ", 400, lambda s: ["empty"]),
]


@pytest.mark.parametrize(("case", "body", "status", "words"), STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_bad_json_body_is_a_4xx_naming_the_problem(client, good_state, case, body, status, words):
    response = client.post("/invocations", content=body(good_state), headers=JSON)
    assert response.status_code == status, response.text
    answer = response.json()
    text = answer["error"] + " " + " ".join(answer["details"])
    for word in words(good_state):
        assert word in text, (case, answer)


def test_non_utf8_body_is_400(client):
    response = client.post("/invocations", content=b"\xff\xfe\x00junk", headers=JSON)
    assert response.status_code == 400
    assert "UTF-8" in response.json()["error"]


def test_oversized_body_is_413(client, server, good_state):
    body = json.dumps({"instances": [good_state] * 20_000}).encode()
    assert len(body) > server.payload_mb * 1024 * 1024
    response = client.post("/invocations", content=body, headers=JSON)
    assert response.status_code == 413
    assert "payload limit" in response.json()["error"]


def test_oversized_chunked_body_is_413(client, server):
    """No Content-Length: the limit is enforced while the body streams in."""

    def chunks():
        for _ in range(server.payload_mb * 16 + 1):
            yield b" " * 65536

    response = client.post("/invocations", content=chunks(), headers=JSON)
    assert response.status_code == 413


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "image/png", ""])
def test_wrong_content_type_is_415(client, good_state, content_type):
    response = client.post(
        "/invocations", content=json.dumps({"state": good_state}), headers={"Content-Type": content_type}
    )
    assert response.status_code == 415
    assert "Content-Type" in response.json()["error"]


@pytest.mark.parametrize("accept", ["application/xml", "text/html", "application/json;q=0"])
def test_unanswerable_accept_is_406(client, good_state, accept):
    response = client.post("/invocations", json={"state": good_state}, headers={"Accept": accept})
    assert response.status_code == 406
    assert "application/json" in " ".join(response.json()["details"])


def test_mixed_instances_answer_bad_records_in_place(client, good_states):
    good, also_good = good_states[0], good_states[1]
    tag = sorted(good)[0]
    instances = [good, {**good, tag: "warm"}, "not a state", {**good, "ghost_tag": 1.0}, also_good]
    response = client.post("/invocations", json={"instances": instances})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 5
    assert predictions[0]["status"] in ("recommended", "hold", "blocked")
    assert predictions[4]["status"] in ("recommended", "hold", "blocked")
    for position in (1, 2, 3):
        assert predictions[position]["status"] == "error"
        assert predictions[position]["record"] == position + 1  # records count from 1, as rows do
    assert any(tag in e for e in predictions[1]["errors"])
    assert any("ghost_tag" in e for e in predictions[3]["errors"])


def test_csv_without_a_required_column_is_one_400_naming_it(client, good_state):
    tags = sorted(good_state)
    header = ",".join(["not_a_tag", *tags[1:]])
    row = ",".join(["1.0", *(str(good_state[t]) for t in tags[1:])])
    response = client.post("/invocations", content=f"{header}\n{row}\n", headers={"Content-Type": "text/csv"})
    assert response.status_code == 400
    text = " ".join(response.json()["details"])
    assert tags[0] in text and "no column" in text


def test_csv_extra_columns_are_ignored_and_named_in_a_header(client, good_state):
    """A historian export carries labels (`episode`): answered as `dragon batch` answers it."""
    tags = sorted(good_state)
    header = ",".join([*tags, "episode", "operator_note"])
    row = ",".join([*(str(good_state[t]) for t in tags), "vacuum_loss", "ok"])
    response = client.post(
        "/invocations", content=f"{header}\n{row}\n{row}\n", headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Ignored-Columns"] == "episode, operator_note"
    assert all(p["status"] != "error" for p in response.json()["predictions"])


def test_csv_ragged_and_bad_rows_are_per_record_errors(client, good_state):
    tags = sorted(good_state)
    row = [str(good_state[t]) for t in tags]
    body = (
        "\n".join(
            [
                ",".join(tags),
                ",".join(row),
                ",".join(row[:-2]),
                ",".join(["abc", *row[1:]]),
                ",".join(["", *row[1:]]),
                ",".join(row),
            ]
        )
        + "\n"
    )
    response = client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    statuses = [p["status"] for p in response.json()["predictions"]]
    assert statuses[1] == statuses[2] == statuses[3] == "error"
    assert statuses[0] != "error" and statuses[4] != "error"
    errors = response.json()["predictions"]
    assert "fields" in errors[1]["errors"][0]
    assert tags[0] in errors[2]["errors"][0]


def test_headerless_csv_with_the_wrong_width_is_400(client):
    response = client.post("/invocations", content="1,2,3\n", headers={"Content-Type": "text/csv"})
    assert response.status_code == 400
    assert "header" in " ".join(response.json()["details"])


def test_json_lines_with_a_broken_line(client, good_states):
    body = json.dumps(good_states[0]) + "\n{broken\n" + json.dumps({"state": good_states[1]}) + "\n"
    response = client.post("/invocations", content=body, headers={"Content-Type": "application/jsonlines"})
    assert response.status_code == 200
    statuses = [p["status"] for p in response.json()["predictions"]]
    assert statuses[1] == "error" and "error" not in (statuses[0], statuses[2])


def test_the_server_keeps_serving_after_bad_input(client, good_state):
    for body in ("", "{", "[" * 50_000, '{"state": {"x": NaN}}'):
        assert client.post("/invocations", content=body, headers=JSON).status_code == 400
    assert client.get("/ping").status_code == 200
    assert client.post("/invocations", json={"state": good_state}).status_code == 200


def test_unknown_route_and_method_are_4xx(client):
    assert client.get("/nope").status_code == 404
    assert client.get("/invocations").status_code == 405
