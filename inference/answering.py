"""One answer per input record, in order: a recommendation, or the record's errors in its place.

Shared by the server and batch runs so both judge records the same way: every
state goes through `dragon.data.parse_state` (nothing is recommended from a state
that could not be fully read), the good ones are recommended together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dragon.bundle import Bundle
from dragon.data import parse_state, parse_window
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
        spec = self.bundle.spec
        for position, record in enumerate(records):
            index = first_index + position
            if record.errors:
                answers.append(RecordError(record=index, errors=record.errors))
                continue
            try:
                state = parse_state(record.raw, spec, source=f"record {index}")
                window = (
                    parse_window(record.recent, record.raw, spec, source=f"record {index}: recent")
                    if record.recent is not None
                    else None
                )
            except DataError as error:
                answers.append(RecordError(record=index, errors=problems_of(error)))
                continue
            answers.append(self.recommender.recommend(state, window))
        return answers
