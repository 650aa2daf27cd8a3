"""`make demo` as a user runs it: a fresh process, its own synth and local cloud."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# The shared cloud's group, though it starts its own moto in a subprocess: the other worker runs the fault matrix and
# the soak (the longest runs), and pytest-xdist hands a worker more tests when it has two left, so an ungrouped demo
# could wait behind the soak there.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_cloud")]

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_finishes_every_saga_and_reconciles():
    # Given a seed other than the default / When the demo runs
    result = subprocess.run(
        [sys.executable, "-m", "local_runtime.demo", "--seed", "11"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Then it exits 0 having shown every scenario and a reconciliation that holds
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for scenario in ("healthy order", "out of stock", "card declined", "carrier reply lost", "flaky payment"):
        assert scenario in result.stdout
    assert "50 sagas finished" in result.stdout
    # And the saga whose carrier crashed and whose refund failed was flagged by the detector, then resumed
    assert "Stuck-sagas queue: 1 report(s) taken" in result.stdout
    assert "retry-succeeded" in result.stdout
    assert "stock and money reconcile" in result.stdout
