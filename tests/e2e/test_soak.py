"""The random-fault soak at a twentieth of `make soak`'s size, as a user runs it: its own process, synth and cloud, the
orchestrated order saga and then its choreographed twin on the same cloud (one synth and deploy for both)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.verdicts import failures

# The long runs' group (see test_fault_matrix.py): after the matrix, on the worker the shared cloud's tests are not
# on. The soak runs its own moto in a subprocess (the matrix's cloud in the worker stays idle meanwhile).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("long_runs")]

REPO = Path(__file__).resolve().parents[2]
SEED = 5  # fixed, so a failure here replays with the same command line
# Each saga and how many of it: the choreographed one smaller, its commands accounted for from the saga bus.
SAGAS = {"OrderFulfillment": 50, "OrderFulfillmentChoreographed": 20}
# Faster than make soak's 0.25: a crashed participant's command comes back after a visibility timeout of 18 s, not 45 s.
# Timeouts that no fault explains may happen more often at this clock; the soak's checks hold whatever ends a saga.
TIME_SCALE = 0.1
COMMAND = [
    "-m",
    "saga_testkit.soak",
    *(argument for saga, count in SAGAS.items() for argument in ("--saga", saga, "--sagas", str(count))),
    "--seed",
    str(SEED),
    "--time-scale",
    str(TIME_SCALE),
]


def test_sagas_of_both_patterns_with_random_faults_end_consistent_and_accounted_for():
    # Given fifty orchestrated and twenty choreographed order sagas whose faults (every kind the local runtime
    # injects) are drawn from a fixed seed
    # When the soak runs them through the signed API, one saga after the other
    result = subprocess.run(
        [sys.executable, *COMMAND], cwd=REPO, capture_output=True, text=True, timeout=900, check=False
    )
    output = result.stdout + result.stderr
    # Then it exits 0: every saga terminal or parked and flagged, stock and money reconciled, every command accounted
    assert result.returncode == 0, f"replay: python {' '.join(COMMAND)}\n{failures(output)}\n{output[-6000:]}"
    for saga, count in SAGAS.items():
        summary = re.search(
            rf"✓ soak seed {SEED}: {count} {saga} sagas terminal or parked and flagged.*\((\d+) fault injections\)",
            output,
        )
        assert summary, f"{saga}:\n{output[-4000:]}"
        # And faults were really injected (the seed's plan is not all healthy sagas)
        assert int(summary.group(1)) > 0, saga
        # And the seed is printed at the start, so a failure can be replayed
        assert f"{count} {saga} sagas, seed {SEED} (replay with --seed {SEED})" in result.stdout
    # And the evidence tables were shown, the choreographed saga's commands read from the saga bus
    for table in (
        "Every command accounted for (execution histories",
        "Every command accounted for (saga bus events",
        "Dead-letter queues and their alarms",
        "Soak figures: OrderFulfillment ",
        "Soak figures: OrderFulfillmentChoreographed ",
    ):
        assert table in result.stdout, table
