"""Fixtures for the API's unit tests: the real routes, service and starter over the fakes of fakes.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from saga_api.admission import Admission, AdmissionLimits
from saga_api.page_tokens import PageTokens
from saga_api.routes import build_resolver
from saga_api.service import Route, SagaFrontDoor
from saga_api.settings import SagaSetting
from saga_records.starter import SagaStarter
from tests.unit.api.fakes import (
    MAX_REQUEST_BYTES,
    ORDER,
    ORDERS,
    PARCEL,
    PARCELS,
    ApiUnderTest,
    FakeBacklogs,
    FakeBucket,
    FakeMac,
    FakeRecords,
    FakeStepFunctions,
    ParcelInput,
)


@pytest.fixture(autouse=True)
def metrics_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the stack sets on the API function: admission counts are flushed as they happen, into this namespace."""
    from saga_api.observability import metrics

    monkeypatch.setattr(metrics, "namespace", "Sagas")


def order_route() -> Route:
    """The order saga's route as the API builds it from its setting: its input model imported by module name."""
    setting = SagaSetting(
        saga_type=ORDERS.saga_type,
        path="orders",
        state_machine_arn=ORDERS.state_machine_arn,
        steps=ORDERS.steps,
        id_field="order_id",
        input_module="sagas.order_fulfillment",
        admission={"starts_per_second": 50, "burst": 50, "max_queue_backlog": 10},
    )
    return Route.of(setting)


@pytest.fixture
def order() -> dict[str, Any]:
    return copy.deepcopy(ORDER)


@pytest.fixture
def parcel() -> dict[str, Any]:
    return copy.deepcopy(PARCEL)


@pytest.fixture
def api() -> ApiUnderTest:
    """The API over two saga types: orders (named by order_id) and parcels (named by Idempotency-Key)."""
    records, sfn, mac, bucket, backlogs = FakeRecords(), FakeStepFunctions(), FakeMac(), FakeBucket(), FakeBacklogs()
    starter = SagaStarter(records, [ORDERS, PARCELS], sfn_client=sfn)
    routes = [order_route(), Route(PARCELS.saga_type, "parcels", None, ParcelInput)]
    limits = {
        saga.saga_type: AdmissionLimits(starts_per_second=50, burst=50, max_queue_backlog=10)
        for saga in (ORDERS, PARCELS)
    }
    front_door = SagaFrontDoor(
        starter,
        records,
        routes,
        max_request_bytes=MAX_REQUEST_BYTES,
        page_tokens=PageTokens(mac),
        admission=Admission(limits, bucket, backlogs),
    )
    return ApiUnderTest(records, sfn, build_resolver(front_door), mac, bucket, backlogs)
