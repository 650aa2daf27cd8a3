"""Lambda entry points of saga operations: Powertools around one call into the domain each."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from saga_operations.detector import StuckSagaDetector
from saga_operations.execution_status import ExecutionStatusReconciler
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


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def detect_stuck_sagas(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    queue = StuckSagaQueue(settings.stuck_sagas_queue_url) if settings.stuck_sagas_queue_url else None
    detector = StuckSagaDetector(records, queue, deadlines=settings.saga_deadlines, time_scale=settings.time_scale)
    detection = detector.run()
    metrics.add_metric(name=metric_names.STUCK_SAGAS, unit=MetricUnit.Count, value=len(detection.stuck))
    metrics.add_metric(name=metric_names.STUCK_SAGAS_REPORTED, unit=MetricUnit.Count, value=len(detection.reported))
    for status, count in detection.in_status.items():
        with single_metric(
            name=metric_names.SAGAS_IN_STATUS, unit=MetricUnit.Count, value=count, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name="service", value=metrics.service or metric_names.OPERATIONS_SERVICE)
            metric.add_dimension(name="status", value=status)
    for saga in detection.reported:
        logger.warning("Stuck saga reported", extra={"saga_id": saga.saga_id, "status": saga.status, "step": saga.step})
    return {"stuck": len(detection.stuck), "reported": [saga.saga_id for saga in detection.reported]}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def reconcile_execution_status(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parked = ExecutionStatusReconciler(records).reconcile(event)
    metrics.add_metric(name=metric_names.EXECUTIONS_RECONCILED, unit=MetricUnit.Count, value=int(parked))
    return {"parked": parked}
