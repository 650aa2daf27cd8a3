"""Metrics of saga operations (names in saga_records.metric_names), published through Powertools EMF."""

from __future__ import annotations

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit, single_metric

from saga_operations.detector import Detection
from saga_records import metric_names


def publish_detection(metrics: EphemeralMetrics, detection: Detection) -> None:
    """StuckSagas (a gauge, 0 included, so the alarm clears), new reports, and the sagas per non-terminal status."""
    metrics.add_metric(name=metric_names.STUCK_SAGAS, unit=MetricUnit.Count, value=len(detection.stuck))
    metrics.add_metric(name=metric_names.STUCK_SAGAS_REPORTED, unit=MetricUnit.Count, value=len(detection.reported))
    for status, count in detection.in_status.items():
        with single_metric(
            name=metric_names.SAGAS_IN_STATUS, unit=MetricUnit.Count, value=count, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name="service", value=metrics.service or metric_names.OPERATIONS_SERVICE)
            metric.add_dimension(name="status", value=status)
