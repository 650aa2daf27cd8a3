"""Lambda entry point of the saga tracker: Powertools around one call into the tracker per SQS record."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from saga_records import SagaRecordRepository
from saga_tracker.bus import TrackerBus
from saga_tracker.deadlines import Deadlines
from saga_tracker.settings import TrackerSettings
from saga_tracker.tracker import SagaTracker, parse_event

settings = TrackerSettings.from_env()
logger = Logger()
tracer = Tracer()
metrics = EphemeralMetrics()
tracker = SagaTracker(
    SagaRecordRepository(settings.saga_table_name),
    TrackerBus(settings.saga_bus_name),
    Deadlines(bus_arn=settings.saga_bus_arn, role_arn=settings.scheduler_role_arn, group=settings.schedule_group),
    settings.choreographies,
    time_scale=settings.time_scale,
)
processor = BatchProcessor(event_type=EventType.SQS)


def _record(record: SQSRecord) -> None:
    done = tracker.handle(parse_event(record.body))
    logger.info("Saga event tracked", extra={"done": done})
    metrics.add_metric(name="SagaEventsTracked", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def track_saga_events(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=_record, processor=processor, context=context)
