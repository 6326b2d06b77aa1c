"""The installed `dragon` console script, run as a user runs it: a subprocess with its own DRAGON_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DRAGON = Path(sys.executable).with_name("dragon")


def run_dragon(*args: str, cwd: Path, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    """`dragon ARGS` in `cwd` (state under cwd/.dragon unless DRAGON_HOME is given); wide terminal."""
    environment = {
        **os.environ,
        "COLUMNS": "160",
        "OMP_NUM_THREADS": "1",
        "DRAGON_HOME": str(cwd / ".dragon"),
        **env,
    }
    return subprocess.run(
        [str(DRAGON), *args], capture_output=True, text=True, cwd=cwd, env=environment, timeout=timeout
    )
