"""One answer per input record, in order: a recommendation, or the record's errors in its place.

Shared by the server and batch runs so both judge records the same way: every
state goes through `dragon.data.parse_state` (nothing is recommended from a state
that could not be fully read), the good ones are recommended together. A batch over
a time-sorted table answers each row with the rows recorded before it as its recent
window (`answer_history`), as the endpoint answers a state sent with its window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dragon.bundle import Bundle
from dragon.data import RecentWindow, max_window_hours, parse_state, parse_window, window_positions
from dragon.errors import DataError
from inference.payloads import Record, problems_of
from inference.schemas import Answer, RecordError
from optimizer.recommender import Recommender


@dataclass
class Answerer:
    bundle: Bundle
    recommender: Recommender
    model_version: str

    @classmethod
    def load(cls, bundle: Bundle, model_version: str) -> Answerer:
        return cls(bundle, Recommender(bundle, model_version=model_version), model_version)

    def answer(self, records: Sequence[Record], first_index: int = 1) -> list[Answer]:
        """Answers for `records`, numbered from `first_index` (1, or a batch chunk's first row)."""
        answers: list[Answer] = []
        for position, record in enumerate(records):
            parsed = self._parse(record, first_index + position)
            if isinstance(parsed, RecordError):
                answers.append(parsed)
                continue
            answers.append(self.recommender.recommend(*parsed))
        return answers

    def answer_history(
        self, records: Sequence[Record], hours: np.ndarray, first: int, first_index: int
    ) -> list[Answer]:
        """Answers for `records[first:]` (numbered from `first_index`), rows of one time-sorted table
        recorded at `hours` (h): each row's recent window is the good rows of the `max_window_hours`
        before it, `records[:first]` being the rows before the first one answered."""
        numbers = range(first_index - first, first_index - first + len(records))
        parsed = [self._parse(record, number) for number, record in zip(numbers, records, strict=True)]
        reach_hours = max_window_hours(self.bundle.spec)
        answers: list[Answer] = []
        for position in range(first, len(records)):
            if isinstance(parsed[position], RecordError):
                answers.append(parsed[position])
                continue
            state, _ = parsed[position]
            earlier = [
                row
                for row in window_positions(hours, position, reach_hours)
                if not isinstance(parsed[row], RecordError) and parsed[row][0].keys() == state.keys()
            ]
            window = (
                RecentWindow(
                    [parsed[row][0] for row in earlier],
                    [float(hours[position] - hours[row]) for row in earlier],
                )
                if earlier
                else None
            )
            answers.append(self.recommender.recommend(state, window))
        return answers

    def _parse(self, record: Record, index: int) -> tuple[dict, RecentWindow | None] | RecordError:
        """(state, recent window or None) of a record, or its errors numbered `index`."""
        if record.errors:
            return RecordError(record=index, errors=record.errors)
        spec = self.bundle.spec
        try:
            state = parse_state(record.raw, spec, source=f"record {index}")
            window = (
                parse_window(record.recent, record.raw, spec, source=f"record {index}: recent")
                if record.recent is not None
                else None
            )
        except DataError as error:
            return RecordError(record=index, errors=problems_of(error))
        return state, window
