"""The real endpoint for contract tests: `serve` in a subprocess on a free loopback port (serving.py).

The bundle is the session's real trained bundle (tests/conftest.py).
"""

from __future__ import annotations

import pytest
from serving import start_server, stop_server


@pytest.fixture(scope="session")
def server(trained_bundle, tmp_path_factory):
    # Two workers, as SageMaker starts on a 2-core instance: each loads the bundle before /ping.
    running = start_server(trained_bundle, tmp_path_factory.mktemp("serve"), workers=2)
    assert running.process.poll() is None, running.log.read_text()[-2000:]
    yield running
    stop_server(running)


@pytest.fixture()
def client(server):
    with server.client() as http:
        yield http


@pytest.fixture(scope="session")
def good_states(small_history, loaded_bundle) -> list[dict[str, float]]:
    """Real plant states from the history: every tag the bundle needs, all readable."""
    import pandas as pd

    from dragon.data import parse_state
    from dragon.errors import DataError

    spec = loaded_bundle.spec
    frame = pd.read_parquet(small_history)
    states = []
    for raw in frame[spec.required_state_tags].iloc[::97].to_dict("records"):
        try:
            states.append(parse_state(raw, spec))
        except DataError:
            continue
        if len(states) == 5:
            break
    assert len(states) == 5
    return states


@pytest.fixture(scope="session")
def good_state(good_states) -> dict[str, float]:
    return good_states[0]
