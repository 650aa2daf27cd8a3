"""Step Functions Standard quotas that bound sustained saga throughput, per account and region: the one table.

Token buckets: `refill_per_s` is the sustained rate, `bucket` the burst that can be spent above it once.
Sources: AWS Step Functions developer guide, "Step Functions service quotas" (API action throttling and
state throttling sections, https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html),
as collected in /work/shared/notes/aws-saga-facts.md. AWS raises these on request (Service Quotas console)
and gives new accounts lower state-transition quotas at first: read the live page before relying on one.
"""

from __future__ import annotations

from dataclasses import dataclass

START_EXECUTION = "StartExecution"
SEND_TASK = "SendTask*"  # SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat share one bucket
STATE_TRANSITIONS = "StateTransition"


@dataclass(frozen=True)
class Quota:
    name: str
    refill_per_s: float  # sustained calls (or transitions) per second, per account and region
    bucket: float | None  # burst capacity; None where the sources we hold give no figure


@dataclass(frozen=True)
class RegionClass:
    name: str
    regions: str
    quotas: tuple[Quota, ...]


REGION_CLASSES = (
    RegionClass(
        name="large regions",
        regions="us-east-1, us-west-2, eu-west-1",
        quotas=(
            Quota(START_EXECUTION, refill_per_s=300, bucket=1300),
            Quota(SEND_TASK, refill_per_s=500, bucket=3000),
            Quota(STATE_TRANSITIONS, refill_per_s=5000, bucket=5000),
        ),
    ),
    RegionClass(
        name="other regions",
        regions="every other commercial region",
        quotas=(
            Quota(START_EXECUTION, refill_per_s=150, bucket=800),
            Quota(SEND_TASK, refill_per_s=300, bucket=None),
            Quota(STATE_TRANSITIONS, refill_per_s=800, bucket=800),
        ),
    ),
)
