"""The overload test at a small size, as a user runs it (`make soak BURST=N`): its own process, synth and cloud, the
orchestrated order saga's burst and then its choreographed twin's on the same cloud.

Healthy sagas sent at once by many clients, faster than one consumer per participant queue drains them: the API's
admission control answers 429 with Retry-After, the clients come back as told, and the burst turns into delay only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.verdicts import failures

# The long runs' group (see test_fault_matrix.py): its own moto in a subprocess, like the random-fault soak.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("long_runs")]

REPO = Path(__file__).resolve().parents[2]
SEED = 3
SAGAS = 30
CLIENTS = 16
PATTERNS = ("OrderFulfillment", "OrderFulfillmentChoreographed")
# One warm environment per participant function: the participants drain a few sagas a second, the clients offer more.
# make soak's clock (0.25): a first step's 60 s timeout lasts 15 s, room enough for a busy host's stalls.
COMMAND = [
    "-m",
    "saga_testkit.soak",
    "--burst",
    str(SAGAS),
    *(argument for saga in PATTERNS for argument in ("--saga", saga)),
    "--clients",
    str(CLIENTS),
    "--consumers",
    "1",
    "--seed",
    str(SEED),
    "--time-scale",
    "0.25",
]


def burst_tables(output: str) -> dict[str, str]:
    """Each saga's burst figures table, by saga name."""
    parts = re.split(r"Burst figures: (\w+) \(", output)
    return {name: table for name, table in zip(parts[1::2], parts[2::2], strict=True)}


def figure(table: str, name: str) -> str:
    found = re.search(rf"│ {re.escape(name)}\s*│\s*(.+?)\s*│", table)
    assert found, f"no figure {name!r} in:\n{table[-4000:]}"
    return found.group(1)


def test_a_burst_of_healthy_sagas_of_either_pattern_degrades_to_delay_never_to_compensation():
    # Given thirty healthy orders of each pattern and sixteen clients that honour Retry-After
    # When each saga's orders are all sent at once through the signed API
    result = subprocess.run(
        [sys.executable, *COMMAND], cwd=REPO, capture_output=True, text=True, timeout=900, check=False
    )
    output = result.stdout + result.stderr
    # Then it exits 0: every saga accepted in the end and terminal, none compensated or parked, every command
    # accounted for, stock and money reconciled
    assert result.returncode == 0, f"replay: python {' '.join(COMMAND)}\n{failures(output)}\n{output[-6000:]}"
    tables = burst_tables(result.stdout)
    assert sorted(tables) == sorted(PATTERNS), output[-4000:]
    for saga, table in tables.items():
        assert f"✓ burst seed {SEED}: {SAGAS} of {SAGAS} {saga} sagas accepted" in output
        assert (figure(table, "compensated (FAILED: every done step undone)"), figure(table, "parked")) == ("0", "0")
        assert figure(table, "completed") == str(SAGAS), saga
        # And the front door did refuse, on the participant queues' backlog: the burst was more than they take at once
        refused = re.search(r"│ refused \(429 backlog\)\s*│\s*(\d+)\s*│", table)
        assert refused, f"{saga}: no start refused for the backlog\n{table}"
        assert int(refused.group(1)) > 0, saga
