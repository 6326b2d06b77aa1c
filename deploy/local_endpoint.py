"""The embedded default's "endpoint": `dragon serve` as a background process on loopback.

One endpoint per environment; its process id, port and version live in
`DRAGON_HOME/endpoints/<env>.json` so `undeploy` and later commands can find it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from dragon.errors import DragonError
from dragon.settings import Settings

READY_SECONDS = 90


@dataclass(frozen=True)
class LocalEndpoint:
    env: str
    pid: int
    port: int
    version: str
    bundle: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _record_path(settings: Settings, env: str) -> Path:
    return settings.home / "endpoints" / f"{env}.json"


def find_endpoint(settings: Settings, env: str) -> LocalEndpoint | None:
    path = _record_path(settings, env)
    if not path.is_file():
        return None
    endpoint = LocalEndpoint(**json.loads(path.read_text()))
    try:
        os.kill(endpoint.pid, 0)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        return None
    return endpoint


def _wait_ready(endpoint: LocalEndpoint, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-800:] if log.is_file() else ""
            raise DragonError(
                f"the local endpoint exited before it was ready (see {log}):\n{tail}", exit_code=1
            )
        try:
            if httpx.get(f"{endpoint.url}/ping", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise DragonError(
        f"the local endpoint did not answer /ping within {READY_SECONDS} s (see {log})", exit_code=1
    )


def start_endpoint(settings: Settings, env: str, version: str, bundle: Path, port: int) -> LocalEndpoint:
    """Start (or replace) the endpoint of `env`, serving `bundle`, and wait until /ping is 200."""
    stop_endpoint(settings, env)
    log = settings.home / "endpoints" / f"{env}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "inference.entrypoint",
        "--bundle",
        str(bundle),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--model-version",
        version,
        "--workers",
        os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "1"),
    ]
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "DRAGON_HOME": str(settings.home)},
        )
    endpoint = LocalEndpoint(env, process.pid, port, version, str(bundle))
    _wait_ready(endpoint, process, log)
    _record_path(settings, env).write_text(json.dumps(asdict(endpoint)))
    return endpoint


def stop_endpoint(settings: Settings, env: str) -> LocalEndpoint | None:
    endpoint = find_endpoint(settings, env)
    if endpoint is None:
        return None
    try:
        os.killpg(endpoint.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    for _ in range(50):
        try:
            os.kill(endpoint.pid, 0)
            time.sleep(0.1)
        except ProcessLookupError:
            break
    _record_path(settings, env).unlink(missing_ok=True)
    return endpoint
