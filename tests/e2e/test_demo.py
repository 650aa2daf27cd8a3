"""`make demo` as a user runs it: in a terminal (progress displays drawn, Ctrl-C live), a fresh process, its own
synth and local cloud."""

from __future__ import annotations

import pytest

from tests.e2e.terminal import start_in_terminal

# The shared cloud's group, though it starts its own moto in a subprocess: the other worker runs the fault matrix and
# the soak (the longest runs), and pytest-xdist hands a worker more tests when it has two left, so an ungrouped demo
# could wait behind the soak there.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_cloud")]

DEMO_TIMEOUT_SECONDS = 300  # about 40 s on 2 cores; a hang (a write loop at 99% CPU) never ends


def test_the_demo_in_a_terminal_finishes_every_saga_and_reconciles():
    # Given a seed other than the default / When the demo runs in a terminal
    demo = start_in_terminal("-m", "saga_testkit.demo", "--seed", "11")
    exit_code = demo.wait(DEMO_TIMEOUT_SECONDS)
    shown = demo.output
    # Then it ends, and exits 0 having shown every scenario and a reconciliation that holds
    assert exit_code is not None, f"the demo hung in a terminal; it last showed:\n{shown[-3000:]}"
    assert exit_code == 0, shown[-6000:]
    for scenario in ("healthy order", "out of stock", "card declined", "carrier reply lost", "flaky payment"):
        assert scenario in shown
    assert "50 sagas finished" in shown
    # And the terminal showed what the deploy into moto was doing while it waited
    assert "Deploying the template into moto: warming Lambda execution environments" in shown
    # And the saga whose carrier crashed and whose refund failed was flagged by the detector, then resumed
    assert "Stuck-sagas queue: 1 report(s) taken" in shown
    assert "retry-succeeded" in shown
    assert "its invariant check holds" in shown
    assert "Money reconciliation" in shown  # the order kit's check, shown
    # And no Lambda output (JSON log lines, EMF metrics) reached the terminal
    assert '"level"' not in shown
    assert "_aws" not in shown
