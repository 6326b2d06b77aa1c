"""Data capture: SageMaker's JSON Lines shape, rotation by size, and never failing a request."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from inference.capture import CaptureWriter, capture_event


def _events(directory: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(directory.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_event_has_sagemakers_shape(tmp_path):
    writer = CaptureWriter(tmp_path)
    writer.submit(capture_event("text/csv", b"a,b\n1,2\n", "application/json", b'{"x": 1}', "inf-1"))
    writer.close()
    [event] = _events(tmp_path)
    data = event["captureData"]
    assert data["endpointInput"] == {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": "a,b\n1,2\n",
        "encoding": "CSV",
    }
    assert data["endpointOutput"] == {
        "observedContentType": "application/json",
        "mode": "OUTPUT",
        "data": '{"x": 1}',
        "encoding": "JSON",
    }
    assert event["eventMetadata"]["inferenceId"] == "inf-1"
    assert event["eventMetadata"]["eventId"]
    assert event["eventMetadata"]["inferenceTime"].endswith("Z")
    assert event["eventVersion"] == "0"
    # SageMaker's hourly folders: yyyy/mm/dd/hh
    [path] = list(tmp_path.rglob("*.jsonl"))
    assert len(path.relative_to(tmp_path).parts) == 5


def test_files_rotate_by_size(tmp_path):
    writer = CaptureWriter(tmp_path, max_bytes=2048)
    for i in range(40):
        writer.submit(
            capture_event(
                "application/json",
                b'{"state": {"t": 1}}' * 3,
                "application/json",
                b'{"status": "hold"}',
                f"id-{i}",
            )
        )
    writer.close()
    files = list(tmp_path.rglob("*.jsonl"))
    assert len(files) > 3
    assert all(path.stat().st_size <= 2048 for path in files)
    assert sorted(e["eventMetadata"]["inferenceId"] for e in _events(tmp_path)) == sorted(
        f"id-{i}" for i in range(40)
    )
    assert writer.counts.rotations == len(files) - 1
    assert writer.counts.captured == 40


def test_an_unwritable_directory_is_counted_not_raised(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    writer = CaptureWriter(blocked / "capture")
    for _ in range(5):
        writer.submit(capture_event("application/json", b"{}", "application/json", b"{}", None))
    writer.close()
    assert writer.counts.write_errors == 5
    assert writer.counts.captured == 0


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path, monkeypatch):
    writer = CaptureWriter(tmp_path, queue_size=2)
    stall = threading.Event()
    monkeypatch.setattr(writer, "_write", lambda event: stall.wait(10))  # a disk that hangs
    started = time.perf_counter()
    for _ in range(50):
        writer.submit(capture_event("application/json", b"{}", "application/json", b"{}", None))
    assert time.perf_counter() - started < 0.5
    assert writer.counts.dropped_queue_full >= 47
    stall.set()
    writer.close()


def test_the_server_captures_invocations(client, server, good_state):
    before = len(_events(server.capture_dir)) if server.capture_dir.exists() else 0
    response = client.post(
        "/invocations", json={"state": good_state}, headers={"X-Amzn-SageMaker-Inference-Id": "t-1"}
    )
    assert response.status_code == 200
    _wait_for(lambda: server.capture_dir.exists() and len(_events(server.capture_dir)) > before)
    [event] = [e for e in _events(server.capture_dir) if e["eventMetadata"]["inferenceId"] == "t-1"]
    assert json.loads(event["captureData"]["endpointInput"]["data"]) == {"state": good_state}
    assert json.loads(event["captureData"]["endpointOutput"]["data"]) == response.json()
    counters = client.get("/ping").json()["capture"]
    assert counters["captured"] >= 1 and counters["write_errors"] == 0
