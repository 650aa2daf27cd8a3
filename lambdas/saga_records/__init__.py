"""The saga record: one DynamoDB item per saga, the source of truth for its status."""

from saga_records.model import IN_FLIGHT_STATUSES, PARKED_STATUSES, TERMINAL_STATUSES, SagaStatus, StepStatus, utc_now
from saga_records.repository import SagaAlreadyExists, SagaRecordRepository

__all__ = [
    "IN_FLIGHT_STATUSES",
    "PARKED_STATUSES",
    "TERMINAL_STATUSES",
    "SagaAlreadyExists",
    "SagaRecordRepository",
    "SagaStatus",
    "StepStatus",
    "utc_now",
]
