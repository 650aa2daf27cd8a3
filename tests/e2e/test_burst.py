"""The overload test at a small size, as a user runs it (`make soak BURST=N`): its own process, synth and cloud.

Healthy sagas sent at once by many clients, faster than one consumer per participant queue drains them: the API's
admission control answers 429 with Retry-After, the clients come back as told, and the burst turns into delay only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

# The long runs' group (see test_fault_matrix.py): its own moto in a subprocess, like the random-fault soak.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("long_runs")]

REPO = Path(__file__).resolve().parents[2]
SEED = 3
SAGAS = 60
CLIENTS = 16
# One warm environment per participant function: the participants drain a few sagas a second, the clients offer more.
# make soak's clock (0.25): a first step's 60 s timeout lasts 15 s, room enough for a busy host's stalls.
COMMAND = [
    "-m",
    "saga_testkit.soak",
    "--burst",
    str(SAGAS),
    "--clients",
    str(CLIENTS),
    "--consumers",
    "1",
    "--seed",
    str(SEED),
    "--time-scale",
    "0.25",
]


def figure(output: str, name: str) -> str:
    found = re.search(rf"│ {re.escape(name)}\s*│\s*(.+?)\s*│", output)
    assert found, f"no figure {name!r} in:\n{output[-4000:]}"
    return found.group(1)


def test_a_burst_of_healthy_sagas_degrades_to_delay_never_to_compensation():
    # Given sixty healthy orders and sixteen clients that honour Retry-After
    # When they are all sent at once through the signed API
    result = subprocess.run(
        [sys.executable, *COMMAND], cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    output = result.stdout + result.stderr
    # Then it exits 0: every saga accepted in the end and terminal, none compensated or parked, every command
    # accounted for, stock and money reconciled
    assert result.returncode == 0, f"replay: python {' '.join(COMMAND)}\n{output[-6000:]}"
    assert f"✓ burst seed {SEED}: {SAGAS} of {SAGAS} sagas accepted" in output
    assert (figure(output, "compensated (FAILED: every done step undone)"), figure(output, "parked")) == ("0", "0")
    assert figure(output, "completed") == str(SAGAS)
    # And the front door did refuse: the burst was more than the participants take at once
    refused = sum(
        int(count) for count in re.findall(r"│ refused \(429 (?:backlog|rate)\)\s*│\s*(\d+)\s*│", result.stdout)
    )
    assert refused > 0, output[-4000:]
