"""Abnormal episodes of the default plant and their schedule (PLANT.md, "Abnormal episodes").

An `Episode` is a labelled window; the history layer injects it. The schedule places about
three events per type and year, non-overlapping, at least four days apart; a short history
gets proportionally fewer (at least one per type while they fit, so 90 days hold most types).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SENSOR_EPISODES = ("t1_sensor_stuck", "chp2_analyser_bias", "ox1_o2_analyser_low")
PROCESS_EPISODES = (
    "feed_inhibitor_spike",
    "carbonate_pump_trip",
    "vacuum_loss",
    "evaporator_fouling_step",
    "air_compressor_limit",
    "novel_operation",
)
EPISODE_TYPES = SENSOR_EPISODES + PROCESS_EPISODES

# Duration range in hours per type. The CHP2 bias ramps 0.05 wt%/h to +2.5, reached after 50 h.
DURATION_HOURS = {
    "t1_sensor_stuck": (24.0, 72.0),
    "chp2_analyser_bias": (60.0, 120.0),
    "ox1_o2_analyser_low": (12.0, 48.0),
    "feed_inhibitor_spike": (12.0, 48.0),
    "carbonate_pump_trip": (6.0, 24.0),
    "vacuum_loss": (3.0, 12.0),
    "evaporator_fouling_step": (240.0, 720.0),
    "air_compressor_limit": (12.0, 48.0),
    "novel_operation": (36.0, 60.0),
}
EVENTS_PER_YEAR = 3
MIN_GAP_HOURS = 96.0  # >= 4 days between events
WARM_UP_HOURS = 48.0  # the plant settles from its initial state first


@dataclass(frozen=True)
class Episode:
    """One abnormal event: its type and its window [start, end) in hours from the history start."""

    kind: str
    start_hours: float
    end_hours: float

    def __post_init__(self) -> None:
        if self.kind not in EPISODE_TYPES:
            raise ValueError(f"unknown episode type {self.kind!r}; known: {', '.join(EPISODE_TYPES)}")
        if not self.end_hours > self.start_hours:
            raise ValueError(f"episode {self.kind} ends before it starts")


def schedule_episodes(days: float, rng: np.random.Generator) -> list[Episode]:
    """Seeded, non-overlapping episodes with >= 4-day gaps that fit in `days`."""
    total = days * 24.0
    per_type = max(1, round(EVENTS_PER_YEAR * days / 365.0))
    kinds = [kind for kind in EPISODE_TYPES for _ in range(per_type)]
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    durations = [float(rng.uniform(*DURATION_HOURS[kind])) for kind in kinds]
    # Drop events (the longest first: the fouling steps) until the rest fit with their gaps.
    while kinds and sum(durations) + WARM_UP_HOURS + MIN_GAP_HOURS * len(kinds) > total:
        longest = int(np.argmax(durations))
        del kinds[longest], durations[longest]
    if not kinds:
        return []
    slack = total - sum(durations) - WARM_UP_HOURS - MIN_GAP_HOURS * len(kinds)
    extra = rng.dirichlet(np.ones(len(kinds) + 1)) * slack
    episodes, clock = [], WARM_UP_HOURS
    for kind, duration, pad in zip(kinds, durations, extra, strict=False):
        start = clock + pad
        episodes.append(Episode(kind, start, start + duration))
        clock = start + duration + MIN_GAP_HOURS
    return episodes
