"""The random-fault soak at a tenth of `make soak`'s size, as a user runs it: its own process, synth and cloud."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

# The long runs' group (see test_fault_matrix.py): after the matrix, on the worker the shared cloud's tests are not
# on. The soak runs its own moto in a subprocess (the matrix's cloud in the worker stays idle meanwhile).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("long_runs")]

REPO = Path(__file__).resolve().parents[2]
SEED = 5  # fixed, so a failure here replays with the same command line
SAGAS = 100
# Faster than make soak's 0.25: a crashed participant's command comes back after a visibility timeout of 18 s, not 45 s.
# Timeouts that no fault explains may happen more often at this clock; the soak's checks hold whatever ends a saga.
TIME_SCALE = 0.1


def test_a_hundred_sagas_with_random_faults_end_consistent_and_accounted_for():
    # Given a hundred sagas whose faults (every kind the local runtime injects) are drawn from a fixed seed
    command = ["-m", "saga_testkit.soak", "--sagas", str(SAGAS), "--seed", str(SEED), "--time-scale", str(TIME_SCALE)]
    # When the soak runs them through the signed API
    result = subprocess.run(
        [sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    output = result.stdout + result.stderr
    # Then it exits 0: every saga terminal or parked and flagged, stock and money reconciled, every command accounted
    assert result.returncode == 0, f"replay: python {' '.join(command)}\n{output[-6000:]}"
    summary = re.search(
        rf"✓ soak seed {SEED}: {SAGAS} sagas terminal or parked and flagged.*\((\d+) fault injections\)", output
    )
    assert summary, output[-4000:]
    # And faults were really injected (the seed's plan is not all healthy sagas)
    assert int(summary.group(1)) > 0
    # And the seed is printed at the start, so a failure can be replayed, and the evidence tables were shown
    assert f"seed {SEED} (replay with --seed {SEED})" in result.stdout
    for table in ("Every command accounted for", "Dead-letter queues and their alarms", "Soak figures"):
        assert table in result.stdout
