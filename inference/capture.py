"""Data capture: every invocation's input and output, in SageMaker's data-capture JSON Lines shape.

A request only puts an event on a bounded queue (never blocks); one background
thread per worker writes the events. A full queue, a full disk or a slow disk
therefore never fails or slows a request: what could not be written is counted
(`CaptureCounts`, served in /ping) instead.

Files follow SageMaker's layout, `<dir>/<yyyy>/<mm>/<dd>/<hh>/<stamp>-<pid>-<n>.jsonl`,
one file per worker process at a time (no interleaved writes), rotated when it
reaches `max_bytes`. Drift monitoring reads `<dir>/**/*.jsonl` back with `read_events`
(and decodes the bodies with inference/payloads.py, as the server did).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import queue
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("dragon.capture")

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_QUEUE_SIZE = 1000


@dataclass(frozen=True)
class CaptureEvent:
    input_type: str
    input_data: str
    output_type: str
    output_data: str
    inference_id: str
    time: datetime

    def to_json(self) -> str:
        return json.dumps(
            {
                "captureData": {
                    "endpointInput": _side(self.input_type, self.input_data, "INPUT"),
                    "endpointOutput": _side(self.output_type, self.output_data, "OUTPUT"),
                },
                "eventMetadata": {
                    "eventId": str(uuid.uuid4()),
                    "inferenceTime": self.time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                    "inferenceId": self.inference_id,
                },
                "eventVersion": "0",
            }
        )

    @classmethod
    def from_json(cls, line: str) -> CaptureEvent:
        """One captured line (ours or SageMaker's, whose data may be BASE64); KeyError/ValueError if
        it is not a capture event."""
        event = json.loads(line)
        data, metadata = event["captureData"], event["eventMetadata"]
        request = data["endpointInput"]
        answer = data.get("endpointOutput", {"observedContentType": "", "data": ""})
        return cls(
            input_type=str(request["observedContentType"]),
            input_data=_data(request),
            output_type=str(answer["observedContentType"]),
            output_data=_data(answer),
            inference_id=str(metadata.get("inferenceId", "")),
            time=datetime.fromisoformat(metadata["inferenceTime"]),
        )


def read_events(source: Path) -> tuple[list[CaptureEvent], int]:
    """Every capture event under a capture folder (any depth) or in one .jsonl file, with the number
    of lines that were not capture events; DataError when there is no capture file at all."""
    from dragon.errors import DataError

    source = Path(source)
    files = [source] if source.is_file() else sorted(source.rglob("*.jsonl")) if source.is_dir() else []
    if not files:
        raise DataError(f"{source}: no data capture here (expected *.jsonl files of the endpoint's capture)")
    events, skipped = [], 0
    for path in files:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                events.append(CaptureEvent.from_json(line))
            except (ValueError, KeyError, TypeError, AttributeError):
                skipped += 1
    return events, skipped


def _data(side: dict[str, Any]) -> str:
    text = str(side["data"])
    if str(side.get("encoding", "")).upper() == "BASE64":
        return base64.b64decode(text).decode("utf-8", errors="replace")
    return text


def _side(content_type: str, data: str, mode: str) -> dict[str, str]:
    return {
        "observedContentType": content_type,
        "mode": mode,
        "data": data,
        "encoding": "CSV" if content_type.startswith("text/csv") else "JSON",
    }


@dataclass
class CaptureCounts:
    captured: int = 0
    dropped_queue_full: int = 0
    write_errors: int = 0
    rotations: int = 0


class CaptureWriter:
    """Appends capture events from a background thread; `submit` never blocks or raises."""

    def __init__(
        self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, queue_size: int = DEFAULT_QUEUE_SIZE
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.counts = CaptureCounts()
        self._queue: queue.Queue[CaptureEvent | None] = queue.Queue(maxsize=queue_size)
        self._file: IO[str] | None = None
        self._file_hour = ""
        self._file_bytes = 0
        self._sequence = 0
        self._thread = threading.Thread(target=self._run, name="dragon-capture", daemon=True)
        self._thread.start()

    def submit(self, event: CaptureEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.counts.dropped_queue_full += 1

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (bounded by `timeout`), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self._write(event)
                self.counts.captured += 1
            except Exception as error:  # noqa: BLE001 - a disk problem must never reach a request
                self.counts.write_errors += 1
                self._close_file()
                if self.counts.write_errors == 1 or self.counts.write_errors % 1000 == 0:
                    log.warning(
                        "data capture: cannot write to %s (%s); %d event(s) lost so far",
                        self.directory,
                        error,
                        self.counts.write_errors,
                    )
        self._close_file()

    def _write(self, event: CaptureEvent) -> None:
        line = event.to_json() + "\n"
        size = len(line.encode())
        hour = event.time.strftime("%Y/%m/%d/%H")
        if self._file is not None and (hour != self._file_hour or self._file_bytes + size > self.max_bytes):
            self._close_file()
            self.counts.rotations += 1
        if self._file is None:
            self._open(event.time, hour)
        self._file.write(line)
        self._file.flush()
        self._file_bytes += size

    def _open(self, time: datetime, hour: str) -> None:
        folder = self.directory / hour
        folder.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{self._sequence}.jsonl"
        self._file = open(folder / name, "a", encoding="utf-8")  # noqa: SIM115 - kept open across events
        self._file_hour = hour
        self._file_bytes = 0

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


def capture_event(
    input_type: str, body: bytes, output_type: str, output: bytes, inference_id: str | None
) -> CaptureEvent:
    return CaptureEvent(
        input_type=input_type,
        input_data=body.decode("utf-8", errors="replace"),
        output_type=output_type,
        output_data=output.decode("utf-8", errors="replace"),
        inference_id=inference_id or str(uuid.uuid4()),
        time=datetime.now(UTC),
    )
