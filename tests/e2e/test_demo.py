"""`make demo` as a user runs it: in a terminal (progress displays drawn, Ctrl-C live), a fresh process, its own
synth and local cloud."""

from __future__ import annotations

import importlib

import pytest

from saga_records import PARKED_STATUSES
from saga_testkit.demo import DEMO_TIME_SCALE
from saga_testkit.kit import kit_module, project_definitions
from tests.e2e.terminal import start_in_terminal

# The shared cloud's group, though it starts its own moto in a subprocess: the other worker runs the fault matrix and
# the soak (the longest runs), and pytest-xdist hands a worker more tests when it has two left, so an ungrouped demo
# could wait behind the soak there.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_cloud")]

SCENARIOS = [
    scenario
    for definition in project_definitions()
    for scenario in importlib.import_module(kit_module(definition)).SCENARIOS
]
DEMO_SAGAS = sum(scenario.count for scenario in SCENARIOS)
PARKED_SAGAS = sum(scenario.count for scenario in SCENARIOS if scenario.expected_status in PARKED_STATUSES)
DEMO_TIMEOUT_SECONDS = 300  # about 60 s on 2 cores for both example sagas; a hang (a write loop at 99% CPU) never ends


def test_the_demo_in_a_terminal_finishes_every_saga_of_both_examples_and_reconciles():
    # Given a seed other than the default / When the demo runs in a terminal
    # (at twice the demo's clock: the other worker runs three sagas' fault matrices on the same 2 cores)
    demo = start_in_terminal("-m", "saga_testkit.demo", "--seed", "11", "--time-scale", str(2 * DEMO_TIME_SCALE))
    exit_code = demo.wait(DEMO_TIMEOUT_SECONDS)
    shown = demo.output
    # Then it ends, and exits 0 having shown every scenario of both sagas and invariant checks that hold
    assert exit_code is not None, f"the demo hung in a terminal; it last showed:\n{shown[-3000:]}"
    assert exit_code == 0, shown[-6000:]
    for scenario in ("healthy order", "out of stock", "card declined", "carrier reply lost", "flaky payment"):
        assert scenario in shown
    for scenario in ("healthy trip", "flight sold out", "hotel without vacancy", "deposit declined", "fare expired"):
        assert scenario in shown
    # (every example saga, interleaved on one cloud: every scenario of every kit)
    assert f"{DEMO_SAGAS} sagas finished" in shown
    # And the terminal showed what the deploy into moto was doing while it waited
    assert "Deploying the template into moto: warming Lambda execution environments" in shown
    # And each parked saga (in each pattern, an order whose refund failed and a trip whose itinerary stayed
    # undelivered past its pivot) was flagged by the detector, then resumed: the orders compensated, the trips completed
    assert f"Stuck-sagas queue: {PARKED_SAGAS} report(s) taken" in shown
    assert shown.count("retry-succeeded") == PARKED_SAGAS
    assert "now FAILED" in shown
    assert "now COMPLETED" in shown
    assert "every saga type's invariant check holds" in shown
    assert "Money reconciliation" in shown  # the order kit's check, shown
    assert "Deposit reconciliation" in shown  # the trip kit's
    # And no Lambda output (JSON log lines, EMF metrics) reached the terminal
    assert '"level"' not in shown
    assert "_aws" not in shown
