"""6. The monitor's full-log verification from tiles vs `entraide ledger verify --export` of the same log.

One simulated deployment (ENTRAIDE_BENCH_MONITOR_TRANSFERS transfers, default 250,000) on SQLite,
checkpointed, exported, and served by a real `entraide serve` process; then, side by side, each a
real `entraide` process: `ledger verify --export` of the export, and `monitor` from an empty state
against the server (keys, checkpoints, every hash tile and entry bundle over HTTP, every check).
They alternate for ROUNDS rounds and the best of each is compared, as section 3 does: on a machine
shared with other jobs, one run of each swung the ratio from 0.74x to 2.04x.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

TRANSFERS = int(os.environ.get("ENTRAIDE_BENCH_MONITOR_TRANSFERS", "250000"))
GOAL_RATIO = 1.5
ROUNDS = 3


def _entraide(*args: str) -> float:
    """Run `entraide ARGS` to completion (exit 0 required); its wall-clock seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "api.cli", *args], check=True, capture_output=True, text=True,
                   env={**os.environ, "LANGUAGE": "en"})  # fmt: skip
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bench_monitor(transfers: int = TRANSFERS) -> None:
    print(f"\n6. Monitor from tiles vs verify --export, {transfers:,} simulated transfers (real processes)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = ["--db", str(work / "entraide.db"), "--data-dir", str(work)]
        _entraide("init", *db, "--history-days", "130")
        simulate_s = _entraide("ledger", "simulate", *db, "--transfers", str(transfers))
        _entraide("ledger", "checkpoint", *db)
        _entraide("ledger", "export", *db, "--out", str(work / "export.jsonl"), "--keys-out", str(work / "keys.json"))
        entries = sum(1 for _ in (work / "export.jsonl").open("rb"))
        print(f"  (simulated {entries:,} entries in {simulate_s:.0f} s)")
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", *db, "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("entraide serve did not start")
                time.sleep(0.2)
            exports, monitors = [], []
            for round_ in range(ROUNDS):
                exports.append(_entraide("ledger", "verify", "--export", str(work / "export.jsonl"),
                                         "--keys", str(work / "keys.json")))  # fmt: skip
                monitors.append(_entraide("monitor", "--url", base, "--state", str(work / f"state{round_}")))
            again_s = _entraide("monitor", "--url", base, "--state", str(work / "state0"))
        finally:
            server.terminate()
            server.wait(30)
    export_s, monitor_s = min(exports), min(monitors)
    ratio = monitor_s / export_s
    print(f"  verify --export {entries / export_s:>10,.0f} entries/s   monitor from tiles {entries / monitor_s:>10,.0f} "
          f"entries/s   ratio {ratio:.2f}x   (goal <= {GOAL_RATIO}x -> {'met' if ratio <= GOAL_RATIO else 'NOT met'})")  # fmt: skip
    print(f"  best of {ROUNDS} alternating rounds; each round: verify --export {', '.join(f'{t:.1f}' for t in exports)} s, "
          f"monitor {', '.join(f'{t:.1f}' for t in monitors)} s")  # fmt: skip
    print(f"  a second monitor run with nothing new: {again_s:.1f} s (re-verifies its mirror, downloads nothing)")
