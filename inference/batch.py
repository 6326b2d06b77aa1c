"""Batch recommendations over a stored table: one output row per input row, on all cores.

The table is cut into chunks; each worker process loads and verifies the bundle
once and answers chunks with the same `Answerer` the server uses. A bad row
becomes an error row (status "error" and its problems) and never stops the run;
a tag a recommendation needs without a column stops it before any work, as one
error naming the column. Columns that are not tags of the plant are ignored
(reported once); rows are numbered from 1 (`row`, as `dragon check` counts them)
and the time column is carried to the output so rows can be joined back.

A table whose time column is strictly increasing is a plant's history: each row is
answered with the rows recorded in the `max_window_hours` before it as its recent
window (a chunk carries the rows before its first one), so its anchors are de-noised
and follow moves that have not settled, as the endpoint's are. Other tables are
answered row by row, each state alone, and the summary says why.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dragon.data import SUFFIXES, elapsed_hours, max_window_hours
from dragon.errors import DataError

MAX_CHUNK_ROWS = 256
CHUNKS_PER_WORKER = 4

_answerer = None  # this worker process's Answerer, loaded once by _start_worker


@dataclass(frozen=True)
class BatchSummary:
    output: Path
    rows: int
    statuses: dict[str, int]
    ignored_columns: list[str]
    seconds: float
    workers: int
    alone_because: str | None  # why rows were answered without recent windows (None: with them)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class _Chunk:
    first_row: int
    rows: list[dict[str, Any]]
    earlier: list[dict[str, Any]]  # the rows recorded before the first one, its recent window's reach
    hours: list[float] | None  # the time of `earlier + rows` in hours, when the table is a history


def _suffix(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown {what} file type '{path.suffix}' (use .csv or .parquet)")
    return suffix


def read_table(path: Path):
    import pandas as pd
    import pyarrow

    suffix = _suffix(path, "input")
    if not path.is_file():
        raise DataError(f"{path}: file not found (pass --input PATH to a CSV or Parquet table)")
    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError, UnicodeDecodeError, pyarrow.ArrowException) as error:
        raise DataError(f"{path}: cannot read the file as {suffix[1:]}: {error}") from None


def _start_worker(bundle: str, model_version: str) -> None:
    global _answerer
    from threadpoolctl import threadpool_limits

    from dragon.bundle import load_bundle
    from inference.answering import Answerer

    threadpool_limits(1)
    _answerer = Answerer.load(load_bundle(bundle), model_version)


def _answer_chunk(chunk: _Chunk) -> tuple[int, list[dict[str, Any]]]:
    from inference.payloads import Record, flatten

    if chunk.hours is None:
        answers = _answerer.answer([Record(row) for row in chunk.rows], first_index=chunk.first_row)
    else:
        records = [Record(row) for row in chunk.earlier + chunk.rows]
        answers = _answerer.answer_history(
            records, np.asarray(chunk.hours), len(chunk.earlier), first_index=chunk.first_row
        )
    flat = []
    for offset, answer in enumerate(answers):
        row = flatten(answer)
        row.pop("record", None)  # the output's `row` column numbers every row
        flat.append({"row": chunk.first_row + offset, **row, "model_version": _answerer.model_version})
    return chunk.first_row, flat


def _answered(
    chunks: list[_Chunk], workers: int, bundle: str, model_version: str
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(first row, flat answers) per chunk, in completion order."""
    if workers == 1:
        _start_worker(bundle, model_version)
        yield from map(_answer_chunk, chunks)
        return
    context = multiprocessing.get_context("spawn")  # never fork a process that holds threads
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(bundle, model_version)
    ) as pool:
        for future in as_completed([pool.submit(_answer_chunk, chunk) for chunk in chunks]):
            yield future.result()


def run_batch(
    input_path: Path,
    output_path: Path,
    bundle: Path,
    model_version: str | None = None,
    *,
    workers: int | None = None,
    chunk_rows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BatchSummary:
    """Recommend for every row of `input_path`; `progress(rows_advanced, rows_total)` once the table is
    read and checked (0 rows advanced), then after each chunk."""
    import pandas as pd

    from dragon.bundle import load_bundle
    from dragon.data import table_columns
    from inference.payloads import number_or_text

    output_suffix = _suffix(output_path, "output")
    started = time.perf_counter()
    loaded = load_bundle(bundle)  # verifies before any worker starts: a bad bundle fails once, clearly
    spec = loaded.spec
    model_version = model_version or loaded.fingerprint
    table = read_table(input_path)
    ignored = table_columns(
        table.columns,
        spec,
        spec.required_state_tags,
        source=str(input_path),
        needed_by="a recommendation reads",
    )
    tags = [column for column in table.columns if column in spec.tags]
    for tag in tags:
        if not pd.api.types.is_numeric_dtype(table[tag]):  # one text cell makes a CSV column text
            table[tag] = (
                table[tag]
                .astype(object)
                .map(lambda v: number_or_text(v.strip()) if isinstance(v, str) else v)
            )
    records = table[tags].to_dict("records")
    workers = max(1, min(workers or os.cpu_count() or 1, len(records) or 1))
    # Several chunks per worker keep every core busy to the end; a chunk is at most MAX_CHUNK_ROWS.
    chunk_rows = chunk_rows or max(1, min(MAX_CHUNK_ROWS, -(-len(records) // (workers * CHUNKS_PER_WORKER))))
    hours, alone_because = _history_hours(table, spec)
    chunks = [_chunk(records, hours, start, chunk_rows, spec) for start in range(0, len(records), chunk_rows)]
    if progress:
        progress(0, len(records))
    done: dict[int, list[dict[str, Any]]] = {}
    for first_row, rows in _answered(chunks, workers, str(bundle), model_version):
        done[first_row] = rows
        if progress:
            progress(len(rows), len(records))
    rows = [row for first_row in sorted(done) for row in done[first_row]]
    out = pd.DataFrame(rows)
    if spec.time_column in table.columns and len(out):
        out[spec.time_column] = table[spec.time_column].to_numpy()
    leading = [
        c
        for c in ("row", spec.time_column, "status", "reason", "errors", "model_version")
        if c in out.columns
    ]
    out = out[leading + [c for c in out.columns if c not in leading]]
    output_path.parent.mkdir(parents=True, exist_ok=True)
    if output_suffix == ".csv":
        out.to_csv(output_path, index=False)
    else:
        out.to_parquet(output_path, index=False)
    statuses = out["status"].value_counts().to_dict() if len(out) else {}
    return BatchSummary(
        output_path,
        len(out),
        {str(k): int(v) for k, v in statuses.items()},
        ignored,
        time.perf_counter() - started,
        workers,
        alone_because,
    )


def _history_hours(table, spec) -> tuple[np.ndarray | None, str | None]:
    """(each row's time in hours, None) when the table is a history sorted by its time column;
    (None, why not) otherwise."""
    import pandas as pd

    column = spec.time_column
    if column not in table.columns:
        return None, f"no '{column}' column"
    times = pd.to_datetime(table[column], utc=True, errors="coerce", format="mixed")
    if times.isna().any():
        return None, f"row {int(times.isna().to_numpy().argmax()) + 1}: '{column}' is not a time"
    hours = elapsed_hours(times)
    not_after = np.flatnonzero(np.diff(hours) <= 0)
    if len(not_after):
        return None, f"row {int(not_after[0]) + 2}: '{column}' is not after the row before it"
    return hours, None


def _chunk(records: list[dict], hours: np.ndarray | None, start: int, rows: int, spec) -> _Chunk:
    """Rows `start`.. of the table (numbered from 1, as dragon.data.ROW_NUMBERS says), with the rows
    recorded in the `max_window_hours` before the first one when the table is a history."""
    end = min(start + rows, len(records))
    if hours is None:
        return _Chunk(start + 1, records[start:end], [], None)
    reach = int(np.searchsorted(hours, hours[start] - max_window_hours(spec), side="right"))
    return _Chunk(start + 1, records[start:end], records[reach:start], hours[reach:end].tolist())
