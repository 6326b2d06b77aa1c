"""Invocation bodies in and out: JSON, JSON Lines and CSV, content negotiation, size limits.

Decoding splits a body into records without judging their values: a record that
cannot even be read (a bad JSON line, a ragged CSV row) carries its own errors and
the others are still answered. `dragon.data.parse_state` then judges each state.
A body that cannot be read at all raises `RequestRejected` with the HTTP status
to answer (400, 406, 413 or 415).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dragon.data import table_columns
from dragon.errors import DataError
from dragon.spec import PlantSpec
from inference.schemas import Answer, Predictions
from optimizer.gate import describe_far_tag
from optimizer.recommendation import Recommendation

JSON = "application/json"
JSONLINES = "application/jsonlines"
CSV = "text/csv"
# Request media types we read, with the aliases clients use for JSON Lines.
CONTENT_TYPES = {
    JSON: JSON,
    JSONLINES: JSONLINES,
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-ndjson": JSONLINES,
    CSV: CSV,
}
ANSWER_TYPES = (JSON, JSONLINES, CSV)
MODEL_VERSION = "model_version"
MEGABYTE = 1024 * 1024


class RequestRejected(DataError):
    """A request refused as a whole; `status_code` is the 4xx to answer."""

    def __init__(self, status_code: int, message: str, details: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.details = list(details)


@dataclass
class Record:
    """One input record: the raw state, or the reasons it could not be read."""

    raw: Mapping[str, Any] | None
    errors: list[str] = field(default_factory=list)
    recent: Any = None  # the raw recent window sent with the state (dragon.data.parse_window judges it)


@dataclass
class Payload:
    records: list[Record]
    single: bool  # a {"state": ...} body: answered with one object, bad input is a 400
    content_type: str
    ignored_columns: list[str] = field(default_factory=list)  # CSV columns that are not tags of the plant


def media_type(header: str | None) -> str:
    """The bare media type of a Content-Type/Accept item: no parameters, lower case."""
    return (header or "").split(";", 1)[0].strip().lower()


def request_type(content_type: str | None) -> str:
    found = CONTENT_TYPES.get(media_type(content_type))
    if found is None:
        shown = media_type(content_type) or "none"
        raise RequestRejected(
            415, f"unsupported Content-Type '{shown}'", [f"send one of: {', '.join(sorted(CONTENT_TYPES))}"]
        )
    return found


def answer_type(accept: str | None) -> str:
    """Pick the answer type from an Accept header (highest q first); absent or */* means JSON."""
    if not accept or not accept.strip():
        return JSON
    choices = []
    for position, item in enumerate(accept.split(",")):
        name, _, params = item.partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        choices.append((-quality, position, name.strip().lower()))
    for negative_quality, _, name in sorted(choices):
        if negative_quality >= 0:
            continue
        if name in ("*/*", "application/*"):
            return JSON
        if name == "text/*":
            return CSV
        if CONTENT_TYPES.get(name) in ANSWER_TYPES:
            return CONTENT_TYPES[name]
    raise RequestRejected(
        406, f"cannot answer in '{accept.strip()[:100]}'", [f"accept one of: {', '.join(ANSWER_TYPES)}"]
    )


def decode(body: bytes, content_type: str, spec: PlantSpec) -> Payload:
    if not body.strip():
        raise RequestRejected(400, "empty body", ['send a plant state, e.g. {"state": {"tag": value, ...}}'])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestRejected(400, f"body is not UTF-8 text (byte {error.start})") from None
    if content_type == JSON:
        return _decode_json(text)
    if content_type == JSONLINES:
        return Payload(_decode_json_lines(text), single=False, content_type=content_type)
    return _decode_csv(text, spec)


def _loads(text: str) -> Any:
    # Python's json reads NaN/Infinity as floats: parse_state then names the tag that carries them.
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"not valid JSON ({str(error)[:120]})") from None


def _decode_json(text: str) -> Payload:
    try:
        body = _loads(text)
    except ValueError as error:
        raise RequestRejected(400, str(error)) from None
    expected = (
        'expected {"state": {tag: value, ...}} (optionally with "recent": [{tag: value, ...}, ...]) '
        'or {"instances": [{tag: value, ...}, ...]}'
    )
    keys = set(body) if isinstance(body, dict) else set()
    if keys not in ({"state"}, {"state", "recent"}, {"instances"}):
        shown = list(body)[:8] if isinstance(body, dict) else type(body).__name__
        raise RequestRejected(400, f"unexpected JSON body: {expected}", [f"got {shown}"])
    if "state" in body:
        state = body["state"]
        if not isinstance(state, dict):
            raise RequestRejected(
                400, "state: must be an object of tag: value", [f"got {type(state).__name__}"]
            )
        return Payload([Record(state, recent=body.get("recent"))], single=True, content_type=JSON)
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestRejected(400, "instances: must be a non-empty list of plant states")
    return Payload([_as_record(item) for item in instances], single=False, content_type=JSON)


def _as_record(item: Any) -> Record:
    if isinstance(item, dict):
        return Record(item)
    return Record(None, [f"a plant state must be an object of tag: value, got {type(item).__name__}"])


def _decode_json_lines(text: str) -> list[Record]:
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            item = _loads(line)
        except ValueError as error:
            records.append(Record(None, [str(error)]))
            continue
        # A line is a state, or {"state": {...}} (optionally with "recent") as in the JSON body.
        if isinstance(item, dict) and set(item) in ({"state"}, {"state", "recent"}):
            record = _as_record(item["state"])
            record.recent = item.get("recent")
            records.append(record)
            continue
        records.append(_as_record(item))
    return records


def number_or_text(text: str) -> float | str:
    """A CSV cell as a number when it reads as one; otherwise the text (parse_state names it)."""
    try:
        return float(text)
    except ValueError:
        return text


def _decode_csv(text: str, spec: PlantSpec) -> Payload:
    """A CSV body, read as every table is (dragon.data.table_columns): columns that are not tags are
    ignored, a required tag without a column refuses the body as a whole."""
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise RequestRejected(400, f"not valid CSV ({error})") from None
    if not rows:
        raise RequestRejected(400, "empty CSV body")
    first = [cell.strip() for cell in rows[0]]
    if all(isinstance(number_or_text(cell), float) for cell in first):
        # No header: SageMaker batch transform splits a file by lines, so only the first
        # mini-batch would carry it. Headerless rows hold the required tags in spec order.
        header, data, ignored = spec.required_state_tags, rows, []
        if len(first) != len(header):
            raise RequestRejected(
                400,
                f"CSV without a header row needs {len(header)} columns, got {len(first)}",
                [f"columns in order: {', '.join(header)}; or start with a header row of tag names"],
            )
    else:
        header, data = first, rows[1:]
        ignored = _check_header(header, spec)
    records = []
    for row in data:
        if len(row) != len(header):
            records.append(Record(None, [f"row has {len(row)} fields, the header has {len(header)}"]))
            continue
        records.append(
            Record(
                {
                    name: number_or_text(cell.strip())
                    for name, cell in zip(header, row, strict=True)
                    if name not in ignored
                }
            )
        )
    if not records:
        raise RequestRejected(400, "CSV has a header row but no data rows")
    return Payload(records, single=False, content_type=CSV, ignored_columns=ignored)


def _check_header(header: list[str], spec: PlantSpec) -> list[str]:
    """The header's columns that are not tags (to ignore), or a 400 naming duplicate or missing columns."""
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise RequestRejected(400, "CSV header row names a column twice", [", ".join(duplicates)])
    try:
        return table_columns(
            header, spec, spec.required_state_tags, source="CSV header", needed_by="a recommendation reads"
        )
    except DataError as error:
        raise RequestRejected(
            400, "CSV header row lacks tags a recommendation reads", [error.message]
        ) from None


def problems_of(error: DataError) -> list[str]:
    """The list items of a parse_state message ('source: N problem(s):\\n  - ...')."""
    items = [line.strip()[2:] for line in error.message.splitlines()[1:] if line.strip().startswith("- ")]
    return items or [error.message]


def flatten(answer: Answer) -> dict[str, Any]:
    """One answer as one table row: nested fields as dotted columns (`setpoints.ox1_temperature`,
    `predicted.yield.recommended`), each constraint under its model and side
    (`constraints.concentration.max.bound`), lists joined with '; '."""
    data = answer.model_dump(mode="json")
    if isinstance(answer, Recommendation):
        data["constraints"] = {
            f"{check.model}.{check.side}": {
                "limit": check.limit,
                **check.model_dump(mode="json", exclude={"model", "max", "min"}),
            }
            for check in answer.constraints
        }
        data["explanation"]["far_tags"] = {
            detector: "; ".join(describe_far_tag(t) for t in far)
            for detector, far in answer.explanation.far_tags.items()
        }
    return _dotted(data)


def _dotted(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_dotted(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = "; ".join(map(str, value))
        else:
            flat[name] = value
    return flat


def decode_answers(body: bytes, answer: str) -> list[dict[str, Any]]:
    """The answers of an `encode`d body, one flat row each (the CSV columns, whatever the type it
    was sent in; CSV cells as text): how monitoring reads what the endpoint served. A refused
    request (ErrorResponse) has none. ValueError if the body is not an answer body of `answer` type."""
    text = body.decode("utf-8", errors="replace")
    if answer == CSV:
        return list(csv.DictReader(io.StringIO(text)))  # cells stay text: a version "7" is not 7.0
    if answer == JSONLINES:
        return [_dotted(json.loads(line)) for line in text.splitlines() if line.strip()]
    document = json.loads(text)
    if "error" in document:
        return []
    if "predictions" in document:
        return [
            _dotted({MODEL_VERSION: document.get(MODEL_VERSION), **item}) for item in document["predictions"]
        ]
    return [_dotted(document)]


def encode(answers: list[Answer], *, single: bool, answer: str, model_version: str) -> bytes:
    if answer == JSON:
        body = answers[0] if single else Predictions(predictions=answers, model_version=model_version)
        return body.model_dump_json().encode()
    if answer == JSONLINES:
        return "".join(item.model_dump_json() + "\n" for item in answers).encode()
    rows = [flatten(item) for item in answers]
    columns = list(dict.fromkeys(name for row in rows for name in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()
