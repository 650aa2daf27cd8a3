"""The saga record: one DynamoDB item per saga, the source of truth for its status."""

from saga_records.model import PARKED_STATUSES, TERMINAL_STATUSES, SagaStatus, StepStatus, utc_now
from saga_records.repository import SagaAlreadyExists, SagaRecordRepository

__all__ = [
    "PARKED_STATUSES",
    "TERMINAL_STATUSES",
    "SagaAlreadyExists",
    "SagaRecordRepository",
    "SagaStatus",
    "StepStatus",
    "utc_now",
]
