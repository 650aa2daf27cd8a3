"""Environments that the local runtime runs as threads of one process publish their own metrics, as processes do."""

from __future__ import annotations

import contextlib
import io
import json
import threading

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from local_runtime.lambda_isolation import metrics_per_thread

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
