"""The reference plant simulator: steady-state truth, historian layer and exact oracle (PLANT.md)."""

from dragon.simulator.episodes import EPISODE_TYPES, PROCESS_EPISODES, SENSOR_EPISODES, Episode
from dragon.simulator.history import SimulatedHistory, generate_history, write_history
from dragon.simulator.oracle import Oracle, OracleResult
from dragon.simulator.truth import PlantParameters, steady_state

__all__ = [
    "EPISODE_TYPES",
    "PROCESS_EPISODES",
    "SENSOR_EPISODES",
    "Episode",
    "Oracle",
    "OracleResult",
    "PlantParameters",
    "SimulatedHistory",
    "generate_history",
    "steady_state",
    "write_history",
]
