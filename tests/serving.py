"""Starting and stopping the real `serve` entry point on a free loopback port, for tests and checks.

The server runs with a 1 MB payload limit (so the oversized-body test sends little) and a small
capture file size (so rotation happens within a test run).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

MODEL_VERSION = "7"
PAYLOAD_MB = 1
CAPTURE_MAX_BYTES = 8192
READY_SECONDS = 60
SERVE = str(Path(sys.executable).parent / "serve")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen
    capture_dir: Path
    log: Path
    model_version: str = MODEL_VERSION
    workers: int = 1
    payload_mb: int = PAYLOAD_MB

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0)


def start_server(bundle: Path, tmp: Path, *, workers: int = 1, extra_env: dict[str, str] | None = None):
    """Start `serve` and wait until /ping is 200 (or the process exits: check `server.process`)."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    env = {
        **os.environ,
        "DRAGON_CAPTURE_DIR": str(tmp / "capture"),
        "DRAGON_CAPTURE_MAX_BYTES": str(CAPTURE_MAX_BYTES),
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(PAYLOAD_MB),
        "OMP_NUM_THREADS": "1",
        **(extra_env or {}),
    }
    command = [
        SERVE,
        "--bundle",
        str(bundle),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--model-version",
        MODEL_VERSION,
    ]
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, tmp / "capture", log, workers=workers)
    wait_ready(server)
    return server


def wait_ready(server: RunningServer) -> dict | None:
    """The /ping body once it is 200; None if the process exited first."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return None
        try:
            response = httpx.get(f"{server.url}/ping", timeout=1.0)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise AssertionError(f"no 200 from /ping within {READY_SECONDS} s:\n{server.log.read_text()[-2000:]}")


def stop_server(server: RunningServer) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(5)
