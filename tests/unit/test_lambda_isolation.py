"""Environments that the local runtime runs as threads of one process publish their own metrics and handle their own
API requests, as processes do."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from abc import ABCMeta

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler.api_gateway import APIGatewayRestResolver, BaseRouter
from aws_lambda_powertools.metrics import MetricUnit

from local_runtime.lambda_isolation import metrics_per_thread, router_event_per_thread

pytestmark = pytest.mark.unit


def two_invocations(metrics: Metrics) -> dict[str, list[dict]]:
    """Invocation A adds a metric; invocation B, on another thread, adds its own and flushes; then A flushes.
    Returns what each flush printed (EMF documents)."""
    printed: dict[str, list[dict]] = {"A": [], "B": []}
    a_added, b_flushed = threading.Event(), threading.Event()

    def flush(name: str) -> None:
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            metrics.flush_metrics()
        printed[name] = [json.loads(line) for line in output.getvalue().splitlines() if line.startswith("{")]

    def invocation_a() -> None:
        metrics.add_metric(name="ReservedByA", unit=MetricUnit.Count, value=1)
        a_added.set()
        b_flushed.wait(5)
        flush("A")

    def invocation_b() -> None:
        a_added.wait(5)
        metrics.add_metric(name="ChargedByB", unit=MetricUnit.Count, value=1)
        flush("B")
        b_flushed.set()

    threads = [threading.Thread(target=invocation_a), threading.Thread(target=invocation_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return printed


def metric_names(documents: list[dict]) -> set[str]:
    return {m["Name"] for d in documents for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def test_without_isolation_one_invocation_publishes_anothers_metrics():
    # Given one Metrics object shared by two concurrent invocations (one process, as the local runtime has), with
    # nothing pending from other tests (the sets are class-wide)
    metrics = Metrics(namespace="Test", service="shared")
    metrics.clear_metrics()
    # When B flushes while A's metric is pending
    printed = two_invocations(metrics)
    # Then B published A's metric, and A had nothing left to publish (the defect the isolation removes)
    assert metric_names(printed["B"]) == {"ReservedByA", "ChargedByB"}
    assert printed["A"] == []


def test_each_thread_publishes_only_its_own_metrics():
    # Given the same sharing, with per-thread metric sets (an instance created before the block included)
    metrics = Metrics(namespace="Test", service="shared")
    with metrics_per_thread():
        # When B flushes while A's metric is pending
        printed = two_invocations(metrics)
    # Then each invocation published exactly its own metric
    assert metric_names(printed["A"]) == {"ReservedByA"}
    assert metric_names(printed["B"]) == {"ChargedByB"}


def test_the_shared_sets_are_given_back_after_the_block():
    # Given an instance and the class-level sets before
    metrics = Metrics(namespace="Test", service="shared")
    before = (Metrics._metrics, metrics.metric_set, metrics.provider.dimension_sets)
    # When the block ends
    with metrics_per_thread():
        pass
    # Then the instance and the class use their original sets again
    assert (Metrics._metrics, metrics.metric_set, metrics.provider.dimension_sets) == before
    assert metrics.metric_set is before[1]


def _order_event(order_id: str) -> dict:
    """An API Gateway REST proxy event: POST /orders with this order's id in the body."""
    return {
        "httpMethod": "POST",
        "path": "/orders",
        "resource": "/orders",
        "body": json.dumps({"order_id": order_id}),
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "pathParameters": None,
        "requestContext": {"requestId": order_id, "stage": "v1"},
        "isBase64Encoded": False,
    }


def two_requests() -> dict[str, str]:
    """Request A's route reads its body only after request B, on another environment's thread, was resolved; each
    environment has its own resolver. Returns the order id each route saw."""
    seen: dict[str, str] = {}
    b_resolved = threading.Event()

    def environment(name: str, wait_for_b: bool) -> None:
        app = APIGatewayRestResolver()

        @app.post("/orders")
        def start():
            if wait_for_b:
                b_resolved.wait(5)
            seen[name] = app.current_event.json_body["order_id"]
            return {"order_id": seen[name]}

        app.resolve(_order_event(f"order-{name}"), None)
        if not wait_for_b:
            b_resolved.set()

    a = threading.Thread(target=environment, args=("A", True))
    a.start()
    environment("B", False)
    a.join(10)
    return seen


def test_without_isolation_a_request_is_handled_with_another_requests_body():
    # Given two API requests resolved at once on two threads of one process
    # When A reads its body after B was resolved
    seen = two_requests()
    # Then A got B's order: Powertools keeps the current event on the router class, one per process
    assert seen == {"A": "order-B", "B": "order-B"}


def test_with_isolation_each_request_is_handled_with_its_own_body():
    # Given the local runtime's per-thread router state
    before = BaseRouter.__dict__.get("current_event")  # whatever an earlier resolve in this process left there
    with router_event_per_thread():
        # When the same two requests are resolved at once
        seen = two_requests()
    # Then each route saw its own order
    assert seen == {"A": "order-A", "B": "order-B"}
    # And leaving the block gives Powertools its class back as it was
    assert type(BaseRouter) is ABCMeta
    assert BaseRouter.__dict__.get("current_event") is before
