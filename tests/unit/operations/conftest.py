"""Fixtures for saga operations: a moto saga table with the by_status index, records as the system writes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto import mock_aws

from saga_operations.detector import iso
from saga_operations.records import OperationsRecords
from tests.unit.tables import create_saga_table

SAGA_TABLE = "sagas"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def now() -> datetime:
    """The detector's clock in these tests; saga ages are before it."""
    return NOW


@pytest.fixture
def records(aws_env: None) -> Iterator[OperationsRecords]:
    with mock_aws():
        create_saga_table(SAGA_TABLE)
        yield OperationsRecords(SAGA_TABLE)


@pytest.fixture
def put_saga(records: OperationsRecords) -> Callable[..., dict[str, Any]]:
    """Write a saga record as the starter, the toolkit and the state machine leave it; ages are before NOW."""

    def put(
        saga_id: str,
        status: str,
        *,
        age: timedelta,
        saga_type: str = "OrderFulfillment",
        current_step: str | None = "process_payment",
        **fields: Any,
    ) -> dict[str, Any]:
        created = iso(NOW - age)
        item = {
            "saga_id": saga_id,
            "saga_type": saga_type,
            "status": status,
            "current_step": current_step,
            "steps": {},
            "input": {"order_id": saga_id},
            "created_at": created,
            "updated_at": fields.pop("updated_at", created),
            "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:OrderFulfillment:{saga_id}",
            "version": 1,
            **fields,
        }
        records._table.put_item(Item=item)
        return item

    return put
