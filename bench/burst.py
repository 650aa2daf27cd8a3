"""The sustained rate at which a burst still degrades to delay only: healthy sagas sent at once through the signed API
(saga_testkit.burst), the rate at which they drained, and whether every one completed (0 compensated, 0 parked, the
soak's checks held). A figure, never a timed assertion.

    python -m bench.burst --sagas 150 --clients 16 --consumers 4 --time-scale 0.25

Runs in a fresh process (the bench starts it) and prints one JSON line: the burst's figures and whether it held.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from saga_testkit.kit import project_definition
from saga_testkit.soak import burst_soak, local_api

REPO = Path(__file__).resolve().parent.parent
SAGAS = 150
CLIENTS = 16
CONSUMERS = 4  # LocalCloud's default: warm environments per participant function
TIME_SCALE = 0.25  # make soak's clock: a 20 s heartbeat lasts 5 s, and a busy host's stalls stay well inside it
SEED = 1
TIMEOUT_SECONDS = 900


def measure(sagas: int, clients: int, consumers: int, time_scale: float, seed: int = SEED) -> dict[str, Any]:
    console = Console(file=io.StringIO(), width=160)  # the figures go out as JSON, not as a table
    definition = project_definition(None)
    with local_api(definition, time_scale=time_scale, consumers=consumers, console=console) as (local_sagas, client):
        figures, violations = burst_soak(local_sagas, client, sagas, seed, clients=clients, console=console)
    return {
        "sagas": sagas,
        "clients": clients,
        "consumers_per_queue": consumers,
        "time_scale": time_scale,
        "held": not violations,
        "violations": len(violations),
        "accepted": len(figures.accepted),
        "refused": dict(figures.refused),
        "completed": figures.statuses.get("COMPLETED", 0),
        "compensated": figures.compensated,
        "parked": figures.parked,
        "spurious_timeouts": sum(figures.timeouts.values()),
        "timeouts_by_step": dict(figures.timeouts),
        "stale_commands_shed": figures.shed,
        "offered_per_s": round(figures.offered_per_second, 2),
        "requests_per_s": round(figures.request_rate, 2),
        "sustained_sagas_per_s": round(figures.drained_per_second, 2),
        "seconds_to_drain": round(figures.seconds_to_drain, 1),
    }


def measure_in_fresh_process(
    sagas: int = SAGAS, clients: int = CLIENTS, consumers: int = CONSUMERS, time_scale: float = TIME_SCALE
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.burst",
        *("--sagas", str(sagas), "--clients", str(clients)),
        *("--consumers", str(consumers), "--time-scale", str(time_scale)),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=SAGAS)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--consumers", type=int, default=CONSUMERS)
    parser.add_argument("--time-scale", type=float, default=TIME_SCALE)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.sagas, args.clients, args.consumers, args.time_scale)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
