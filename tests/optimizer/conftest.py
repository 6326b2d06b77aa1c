"""Fixtures of the optimizer tests: the two-stage test plant of two_stage_plant.py, fitted once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from two_stage_plant import PLANT, calibration, fit_plant, normal_states, simulate

from dragon.bundle import Bundle, Manifest
from dragon.spec import parse_plant


@pytest.fixture(scope="session")
def plant():
    return parse_plant(PLANT, "<two-stage test plant>")


@pytest.fixture(scope="session")
def history(plant):
    return simulate(np.random.default_rng(1), 800)


@pytest.fixture(scope="session")
def bundle(plant, history, tmp_path_factory) -> Bundle:
    gams, detectors, baselines = fit_plant(plant, history)
    path: Path = tmp_path_factory.mktemp("two-stage-bundle")
    manifest = Manifest(1, plant.name, "", {}, {})
    return Bundle(path, plant, gams, detectors, baselines, {}, manifest, calibration(plant))


@pytest.fixture(scope="session")
def recommender(bundle):
    from optimizer.recommender import Recommender

    return Recommender(bundle, model_version="test-1")


@pytest.fixture(scope="session")
def make_states():
    return normal_states
