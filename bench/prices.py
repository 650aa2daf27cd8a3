"""AWS prices per pattern's billable unit: the one table, each price with its source (us-east-1, on-demand, past
the free tiers, as published on each service's pricing page; check the live page before relying on a figure).

What is left out, the same for both patterns: Lambda duration (GB-seconds; each participant does the same work in
both patterns), CloudWatch logs, metrics and alarms, X-Ray, KMS and data transfer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    service: str  # the key of a requests-per-saga figure
    unit: str
    usd: float
    per: int  # units the price is for
    source: str

    def usd_per_million_sagas(self, units_per_saga: float) -> float:
        return units_per_saga * 1_000_000 / self.per * self.usd


PRICES = (
    Price(
        "stepfunctions",
        "Standard state transition",
        0.025,
        1_000,
        "https://aws.amazon.com/step-functions/pricing/",
    ),
    Price(
        "events",
        "custom event put on a bus (PutEvents entry, a deadline schedule's too), per 64 KB",
        1.00,
        1_000_000,
        "https://aws.amazon.com/eventbridge/pricing/",
    ),
    Price(
        "scheduler",
        "EventBridge Scheduler invocation (a step's deadline firing)",
        1.00,
        1_000_000,
        "https://aws.amazon.com/eventbridge/pricing/",
    ),
    Price("sqs", "standard queue request, per 64 KB", 0.40, 1_000_000, "https://aws.amazon.com/sqs/pricing/"),
    Price(
        "dynamodb.write",
        "on-demand write request unit (an item write up to 1 KB)",
        0.625,
        1_000_000,
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    Price(
        "dynamodb.read",
        "on-demand read request unit (a strongly consistent read up to 4 KB)",
        0.125,
        1_000_000,
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    Price("lambda", "Lambda request (one SQS batch)", 0.20, 1_000_000, "https://aws.amazon.com/lambda/pricing/"),
    Price(
        "apigateway",
        "REST API request (the saga's POST)",
        3.50,
        1_000_000,
        "https://aws.amazon.com/api-gateway/pricing/",
    ),
)


def usd_per_million_sagas(units_per_saga: dict[str, float]) -> dict[str, float]:
    """Each priced service's cost of a million sagas, from the billable units one saga takes (absent: none)."""
    return {price.service: price.usd_per_million_sagas(units_per_saga.get(price.service, 0.0)) for price in PRICES}
