"""Starting the server: a bundle that fails verification stops it with one clear line and exit code 2;
`dragon serve` runs locally from a bundle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from serving import RunningServer, free_port, start_server, stop_server, wait_ready


def test_a_tampered_bundle_stops_the_server(trained_bundle, tmp_path):
    bundle = shutil.copytree(trained_bundle, tmp_path / "bundle")
    (bundle / "metrics.json").write_text('{"rmse": 0.0}')
    server = start_server(bundle, tmp_path)
    try:
        assert server.process.wait(60) == 2
    finally:
        stop_server(server)
    log = server.log.read_text()
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1, log
    assert "metrics.json" in errors[0] and "sha256" in errors[0]
    assert "Traceback" not in log


def test_dragon_serve_one_worker_from_a_bundle(trained_bundle, tmp_path):
    """`dragon serve` locally: loopback, one in-process worker, versioned by the bundle's hash."""
    port = free_port()
    env = {**os.environ, "DRAGON_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    env.pop("DRAGON_CAPTURE_DIR", None)
    env.pop("DRAGON_MODEL_VERSION", None)
    command = [
        str(Path(sys.executable).parent / "dragon"),
        "serve",
        "--bundle",
        str(trained_bundle),
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with open(tmp_path / "serve.log", "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = RunningServer(
        f"http://127.0.0.1:{port}", process, tmp_path / "home" / "capture", tmp_path / "serve.log"
    )
    try:
        ping = wait_ready(server)
        assert ping is not None, server.log.read_text()
    finally:
        stop_server(server)
    assert ping["model_version"].startswith("bundle-")
    assert ping["capture"]["enabled"]
