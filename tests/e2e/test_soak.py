"""`make soak` at a tenth of its size, as a user runs it: a fresh process, its own synth and local cloud."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

# Its own xdist group: it starts its own moto in a subprocess. Marked `soak` and left out of `make test` for now:
# the run takes about 5 minutes on 2 cores (`pytest -m soak` runs it).
pytestmark = [pytest.mark.e2e, pytest.mark.soak, pytest.mark.xdist_group("soak")]

REPO = Path(__file__).resolve().parents[2]
SEED = 5  # fixed, so a failure here replays with `python -m local_runtime.soak --sagas 100 --seed 5`


def test_a_hundred_sagas_with_random_faults_end_consistent_and_accounted_for():
    # Given a hundred sagas with faults drawn from a fixed seed / When the soak runs them through the API
    result = subprocess.run(
        [sys.executable, "-m", "local_runtime.soak", "--sagas", "100", "--seed", str(SEED)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    # Then it exits 0: every saga terminal or parked and flagged, stock and money reconciled, every command accounted
    assert result.returncode == 0, output[-4000:]
    summary = re.search(
        rf"✓ soak seed {SEED}: 100 sagas terminal or parked and flagged.*\((\d+) fault injections\)", output
    )
    assert summary, output[-4000:]
    # And faults were really injected (the seed's plan is not all healthy sagas)
    assert int(summary.group(1)) > 0
    # And the seed is printed at the start, so a failure can be replayed, and the evidence tables were shown
    assert f"seed {SEED} (replay with --seed {SEED})" in result.stdout
    for table in ("Every command accounted for", "Dead-letter queues and their alarms", "Soak figures"):
        assert table in result.stdout
