"""The pattern cost's arithmetic: requests counted by operation become the units each service bills, priced from the
one table (expected figures worked out by hand from the prices' own pages)."""

from __future__ import annotations

import pytest

from bench.pattern_cost import billable_units
from bench.prices import PRICES, usd_per_million_sagas

pytestmark = pytest.mark.unit


def test_requests_become_the_units_each_service_bills():
    requests = {
        "dynamodb.UpdateItem": 6.0,
        "dynamodb.PutItem": 2.0,
        "dynamodb.GetItem": 1.5,
        "dynamodb.Query": 0.5,
        "sqs.SendMessage": 4.0,
        "sqs.SendMessage(EventBridge)": 8.0,
        "sqs.DeleteMessageBatch": 8.0,
        "sqs.ReceiveMessage": 8.0,
        "lambda.Invoke": 8.0,
        "events.PutEvents": 5.0,
        "scheduler.CreateSchedule": 4.0,
        "states.SendTaskSuccess": 4.0,
    }
    units = billable_units(requests, transitions=0.0, schedules_fired=4.0)
    assert units == {
        "stepfunctions": 0.0,
        "events": 9.0,  # five PutEvents entries and four deadlines the schedules put
        "scheduler": 4.0,  # fired, not created
        "sqs": 28.0,
        "dynamodb.write": 8.0,
        "dynamodb.read": 2.0,
        "lambda": 8.0,
        "apigateway": 1.0,
    }


def test_a_million_happy_orchestrated_sagas_cost_125_dollars_of_transitions():
    cost = usd_per_million_sagas({"stepfunctions": 5.0, "apigateway": 1.0})
    assert cost["stepfunctions"] == pytest.approx(125.0)  # 5 transitions x 1,000 x $0.025
    assert cost["apigateway"] == pytest.approx(3.5)
    assert cost["sqs"] == 0.0


def test_every_price_names_its_source():
    assert {price.service for price in PRICES} >= {"stepfunctions", "events", "scheduler", "sqs", "lambda"}
    assert all(price.source.startswith("https://aws.amazon.com/") and price.usd > 0 for price in PRICES)
