"""Lambda entry points of saga operations: Powertools around one call into the domain each."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from saga_operations.detector import StuckSagaDetector
from saga_operations.execution_status import ExecutionStatusReconciler
from saga_operations.notices import AllOf, IncidentNotices, ReportSink
from saga_operations.observability import publish_detection
from saga_operations.records import OperationsRecords
from saga_operations.settings import OperationsSettings
from saga_operations.stuck_queue import StuckSagaQueue
from saga_records import metric_names

settings = OperationsSettings.from_env()
records = OperationsRecords(settings.saga_table_name)
logger = Logger()
tracer = Tracer()
# Not the process-wide Metrics: these functions' metrics never mix with another module's.
metrics = EphemeralMetrics()
# Only the detector's environment has deadlines (and the queue and topic); the reconciler's has none of them.
sinks: list[ReportSink] = []
if settings.stuck_sagas_queue_url:
    sinks.append(StuckSagaQueue(settings.stuck_sagas_queue_url))
if settings.incident_topic_arn:
    sinks.append(IncidentNotices(settings.incident_topic_arn))
detector = (
    StuckSagaDetector(
        records,
        AllOf(sinks) if sinks else None,
        deadlines=settings.saga_deadlines,
        time_scale=settings.time_scale,
    )
    if settings.saga_deadlines
    else None
)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def detect_stuck_sagas(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if detector is None:
        raise RuntimeError("SAGA_DEADLINES_JSON is not set: the stuck-saga detector has no deadlines")
    detection = detector.run()
    publish_detection(metrics, detection)
    return {"stuck": len(detection.stuck), "reported": [saga.saga_id for saga in detection.reported]}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def reconcile_execution_status(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parked = ExecutionStatusReconciler(records).reconcile(event)
    metrics.add_metric(name=metric_names.EXECUTIONS_RECONCILED, unit=MetricUnit.Count, value=int(parked))
    return {"parked": parked}
