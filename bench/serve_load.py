"""Load on the real endpoint over loopback, and `dragon batch` throughput.

    python bench/serve_load.py [--bundle DIR | --version V] [--seconds 60] [--rows 100000] [--workers N]

1. Starts `serve` (N workers, one thread each) on a free loopback port.
2. For concurrency 1, 8 and 32: a separate client process (asyncio + httpx) sends single-state
   requests for `--seconds`; reports p50/p99 latency, throughput and errors (non-200 or failures).
3. Runs `dragon batch` over a table of `--rows` rows and reports rows/s (wall time, worker start
   included).

Plant states are real: rows of a simulated history (`dragon simulate`). The last line printed is
one JSON object: p50_ms_c1, p99_ms_c1, p50_ms_c8, p99_ms_c8, p99_ms_c32, rps_c8, errors,
batch_rows_per_s (plus the settings used).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THREADS = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
BIN = Path(sys.executable).parent
CONCURRENCY = (1, 8, 32)
READY_SECONDS = 120


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# --- the client process -------------------------------------------------------------------
async def _load(url: str, states: list[dict], concurrency: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def user(client: httpx.AsyncClient, seed: int) -> None:
        nonlocal errors
        pick = random.Random(seed)
        while time.perf_counter() < deadline:
            body = {"state": pick.choice(states)}
            started = time.perf_counter()
            try:
                response = await client.post(f"{url}/invocations", json=body)
                ok = response.status_code == 200
            except Exception:  # noqa: BLE001 - every failure counts as an error
                ok = False
            if ok:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors += 1

    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(user(client, seed) for seed in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
        "rps": len(latencies) / elapsed,
    }


def client_main(args: argparse.Namespace) -> None:
    states = json.loads(Path(args.states).read_text())
    print(json.dumps(asyncio.run(_load(args.client, states, args.concurrency, args.seconds))))


# --- the orchestrator ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bundle(args: argparse.Namespace) -> tuple[Path, str | None]:
    if args.bundle:
        return Path(args.bundle), None
    from dragon.registry import plant_bundle

    return plant_bundle(None, args.version)


def _states(spec, work: Path, days: float) -> list[dict]:
    import pandas as pd

    from dragon.data import parse_state
    from dragon.errors import DataError
    from dragon.simulator import write_history

    history, _ = write_history(days=days, seed=11, out=work / "history.parquet", sample_minutes=5.0)
    states = []
    for raw in pd.read_parquet(history)[spec.required_state_tags].to_dict("records"):
        try:
            states.append(parse_state(raw, spec))
        except DataError:
            continue
    return states


def _start_server(
    bundle: Path, version: str | None, workers: int, work: Path
) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    command = [
        str(BIN / "serve"),
        "--bundle",
        str(bundle),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ] + (["--model-version", version] if version else [])
    env = {**os.environ, **THREADS, "DRAGON_CAPTURE_DIR": str(work / "capture")}
    log = open(work / "serve.log", "w")  # noqa: SIM115 - open for the server's lifetime
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"serve exited:\n{(work / 'serve.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/ping", timeout=1.0).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    os.killpg(process.pid, signal.SIGTERM)
    raise SystemExit(f"serve did not answer /ping within {READY_SECONDS} s")


def _run_client(url: str, states_file: Path, concurrency: int, seconds: float) -> dict:
    command = [
        sys.executable,
        __file__,
        "--client",
        url,
        "--states",
        str(states_file),
        "--concurrency",
        str(concurrency),
        "--seconds",
        str(seconds),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, **THREADS}
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _batch(
    bundle: Path, version: str | None, states: list[dict], rows: int, workers: int, work: Path
) -> dict:
    import pandas as pd

    table = pd.DataFrame([states[i % len(states)] for i in range(rows)])
    table.to_parquet(work / "batch_in.parquet")
    command = [
        str(BIN / "dragon"),
        "batch",
        "--input",
        str(work / "batch_in.parquet"),
        "--output",
        str(work / "batch_out.parquet"),
        "--bundle",
        str(bundle),
        "--workers",
        str(workers),
        "--json",
    ]
    env = {**os.environ, **THREADS, **({"DRAGON_MODEL_VERSION": version} if version else {})}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    wall = time.perf_counter() - started
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "rows": summary["rows"],
        "seconds": wall,
        "rows_per_s": summary["rows"] / wall,
        "statuses": summary["statuses"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bundle", help="bundle directory or model.tar.gz (default: the registry's champion)"
    )
    parser.add_argument("--version", default=None, help="registered version or alias (default: champion)")
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration per concurrency level")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the batch run (0: skip)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server and batch workers")
    parser.add_argument("--history-days", type=float, default=2.0, help="simulated days to draw states from")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: run as the load client
    parser.add_argument("--states", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return

    os.environ.update(THREADS)
    from dragon.bundle import load_bundle

    bundle, version = _bundle(args)
    spec = load_bundle(bundle).spec
    with tempfile.TemporaryDirectory(prefix="dragon-bench-") as tmp:
        work = Path(tmp)
        states = _states(spec, work, args.history_days)
        states_file = work / "states.json"
        states_file.write_text(json.dumps(states))
        print(
            f"{len(states)} plant states; server: {args.workers} worker(s), threads per worker: 1", flush=True
        )
        process, url = _start_server(bundle, version, args.workers, work)
        levels = {}
        try:
            for concurrency in CONCURRENCY:
                levels[concurrency] = _run_client(url, states_file, concurrency, args.seconds)
                print(json.dumps(levels[concurrency]), flush=True)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
        batch = _batch(bundle, version, states, args.rows, args.workers, work) if args.rows else None
        if batch:
            print(json.dumps({"batch": batch}), flush=True)
    figures = {
        "p50_ms_c1": round(levels[1]["p50_ms"], 2),
        "p99_ms_c1": round(levels[1]["p99_ms"], 2),
        "p50_ms_c8": round(levels[8]["p50_ms"], 2),
        "p99_ms_c8": round(levels[8]["p99_ms"], 2),
        "p99_ms_c32": round(levels[32]["p99_ms"], 2),
        "rps_c8": round(levels[8]["rps"], 1),
        "errors": sum(level["errors"] for level in levels.values()),
        "batch_rows_per_s": round(batch["rows_per_s"], 1) if batch else None,
        "seconds_per_level": args.seconds,
        "batch_rows": args.rows,
        "workers": args.workers,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
