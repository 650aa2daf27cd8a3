"""Fixtures for the participant toolkit's tests: moto with the saga table (the real SagaRecordRepository), the
Powertools idempotency table and the four services' tables; Step Functions' side of task tokens is a task board."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from participant_toolkit import ParticipantSettings, observability
from saga_records import SagaRecordRepository
from statemachines import SagaDefinition, load_definition, parse_definition
from tests.sagas.order_fulfillment.kit import SAGA_FILE
from tests.unit.tables import create_idempotency_table, create_saga_table, create_service_table
from tests.unit.toolkit.harness import (
    IDEMPOTENCY_TABLE,
    SAGA_TABLE,
    SERVICE_TABLES,
    DynamoDBRequests,
    FakeDeliveries,
    Participants,
    SagaDriver,
    Services,
    TaskBoard,
)


@pytest.fixture
def requests() -> Iterator[DynamoDBRequests]:
    """Counts the DynamoDB requests moto serves (installed before moto starts, around every test here)."""
    with DynamoDBRequests().counted() as counted:
        yield counted


@pytest.fixture
def cloud(aws_env: None, monkeypatch: pytest.MonkeyPatch, requests: DynamoDBRequests) -> Iterator[None]:
    # What the stack sets on every participant function, minus X-Ray (no daemon here).
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    # The shared Metrics object read its namespace when first imported, maybe before this test's env.
    monkeypatch.setattr(observability.metrics, "namespace", "Sagas")
    with mock_aws():
        create_saga_table(SAGA_TABLE)
        create_idempotency_table(IDEMPOTENCY_TABLE)
        for table in SERVICE_TABLES.values():
            create_service_table(table)
        yield


@pytest.fixture
def settings(cloud: None) -> ParticipantSettings:
    return ParticipantSettings(
        SERVICE_TABLE_NAME="unused: the services here get their tables directly",
        SAGA_TABLE_NAME=SAGA_TABLE,
        IDEMPOTENCY_TABLE_NAME=IDEMPOTENCY_TABLE,
        SAGA_TIME_SCALE=1.0,
    )


@pytest.fixture
def board(cloud: None) -> Iterator[TaskBoard]:
    board = TaskBoard()
    yield board
    board.release_all()


@pytest.fixture
def deliveries() -> FakeDeliveries:
    return FakeDeliveries()


@pytest.fixture
def records(cloud: None) -> SagaRecordRepository:
    return SagaRecordRepository(SAGA_TABLE)


@pytest.fixture
def services(cloud: None) -> Services:
    return Services.on_moto()


@pytest.fixture
def participants(
    settings: ParticipantSettings, board: TaskBoard, services: Services, deliveries: FakeDeliveries
) -> Participants:
    return Participants(settings, board, services, deliveries)


@pytest.fixture
def definition() -> SagaDefinition:
    return load_definition(SAGA_FILE)


@pytest.fixture
def raw_definition() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(SAGA_FILE.read_text(encoding="utf-8"))


@pytest.fixture
def saga(definition: SagaDefinition, board: TaskBoard, records: SagaRecordRepository) -> SagaDriver:
    """One order saga, started: its record written and its first step running."""
    return SagaDriver(definition, board, records).start()


@pytest.fixture
def saga_of(board: TaskBoard, records: SagaRecordRepository):
    """`saga_of(raw_definition)`: one saga of a variant definition, started."""

    def start(raw: dict[str, Any]) -> SagaDriver:
        return SagaDriver(parse_definition(raw), board, records).start()

    return start
