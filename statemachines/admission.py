"""Admission control of one saga type at the API: how many starts it takes, checked before anything is written.

A task's heartbeat and timeout run while its command waits in a participant's queue, where nobody can beat for it. So
a burst that outruns the participants does not just wait: its sagas time out and compensate, their compensations time
out too, and a burst becomes a pile of parked sagas. The API therefore refuses a start (`429` with `Retry-After`) when
this saga type is over either limit:

- `starts_per_second` and `burst`: a token bucket per saga type (one conditional write per admitted start). By
  default the saga's share of what one account and region sustains, the capacity model's figure for the smaller
  region class (bench/capacity.py): the tightest of StartExecution, the SendTask* calls of the saga's callback tasks
  and its happy path's state transitions. A burst of one second's worth.
- `max_queue_backlog`: commands waiting or being worked in any one of the saga's participant queues (actions and
  compensations), with the starts admitted since the queues were last read. By default one batch of a participant's
  event source: a batch's commands are worked one after another, so a command behind a full batch already waits
  while its task's clock runs; more commands only wait longer, they add no throughput.

Several sagas in one account share its quotas: give each a `starts_per_second` so that they sum below them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

# Step Functions Standard quotas of the smaller region class ("other regions" in bench/quotas.py, the one table of
# them; a test keeps these equal), per second.
START_EXECUTION_PER_SECOND = 150
SEND_TASK_PER_SECOND = 300
STATE_TRANSITIONS_PER_SECOND = 800
DEFAULT_MAX_QUEUE_BACKLOG = 10  # commands: one batch of a participant's event source (infra.constants.BATCH_SIZE)
MAX_STARTS_PER_SECOND = 10_000


class Admission(BaseModel):
    """The definition's `admission:` block; each field left out takes its default (AdmissionLimits.of)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    starts_per_second: float | None = Field(default=None, gt=0, le=MAX_STARTS_PER_SECOND)  # sustained starts
    burst: int | None = Field(default=None, ge=1, le=100_000)  # starts taken at once above the sustained rate
    max_queue_backlog: int | None = Field(default=None, ge=1, le=100_000)  # commands waiting in one queue


@dataclass(frozen=True)
class AdmissionLimits:
    starts_per_second: float
    burst: int
    max_queue_backlog: int

    @classmethod
    def of(cls, admission: Admission, *, steps: int) -> AdmissionLimits:
        rate = admission.starts_per_second or default_starts_per_second(steps)
        return cls(
            starts_per_second=rate,
            burst=admission.burst or max(1, math.ceil(rate)),
            max_queue_backlog=admission.max_queue_backlog or DEFAULT_MAX_QUEUE_BACKLOG,
        )


def default_starts_per_second(steps: int) -> float:
    """What one account and region of the smaller class sustains of a saga of `steps` callback steps: one
    StartExecution, one SendTask* answer per step (quick steps need no heartbeat), steps + 1 transitions each."""
    rate = min(START_EXECUTION_PER_SECOND, SEND_TASK_PER_SECOND / steps, STATE_TRANSITIONS_PER_SECOND / (steps + 1))
    return math.floor(rate * 100) / 100
