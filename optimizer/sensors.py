"""Stuck sensors: a live reading that stops changing over the recent window.

A sensor that freezes (a stuck transmitter, a frozen historian tag) keeps reporting a plausible value, so
neither the detectors nor the models' consistency check see it in one state: the plant around it may
be fine while the true value wanders off (a blind temperature controller). Over a window it is plain: a
tag whose training readings repeated the one before in at most STUCK_MAX_REPEAT_SHARE of rows (a live
sensor with noise, not a lab sample held between analyses) that repeats exactly over its last
STUCK_READINGS readings or more. Under normal operation that run has a chance of repeat_share^run
(below 1e-10 for a sensor repeating 2 % of the time).
"""

from __future__ import annotations

from collections.abc import Mapping

from dragon.calibration import Calibration
from dragon.data import RecentWindow
from dragon.spec import PlantSpec
from optimizer.recommendation import StuckSensor

STUCK_READINGS = 6  # identical readings in a row, the state's included
STUCK_MAX_REPEAT_SHARE = 0.05  # tags that repeated more often in training (held values) are not checked


def stuck_sensors(
    spec: PlantSpec, calibration: Calibration, state: Mapping[str, float], window: RecentWindow | None
) -> list[StuckSensor]:
    """The state's live tags whose last STUCK_READINGS or more readings are identical (module docstring)."""
    if window is None or len(window.rows) + 1 < STUCK_READINGS:
        return []
    stuck = []
    for tag in (tag for tag in spec.tags if tag in state):
        share = calibration.repeat_share.get(tag)
        if share is None or share > STUCK_MAX_REPEAT_SHARE:
            continue
        run = 1
        for row in reversed(window.rows):
            if row.get(tag) != state[tag]:
                break
            run += 1
        if run >= STUCK_READINGS:
            hours = window.hours_before[len(window.rows) - run + 1] if window.hours_before else None
            stuck.append(
                StuckSensor(tag=tag, value=state[tag], readings=run, hours=hours, training_repeat_share=share)
            )
    return stuck
