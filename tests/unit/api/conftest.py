"""Fixtures for the API's unit tests: the real routes, service and starter over the fakes of fakes.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from saga_api.routes import build_resolver
from saga_api.service import OrderSagas
from saga_records.starter import SagaStarter
from tests.unit.api.fakes import (
    MAX_REQUEST_BYTES,
    ORDER,
    STATE_MACHINE_ARN,
    STEPS,
    ApiUnderTest,
    FakeRecords,
    FakeStepFunctions,
)


@pytest.fixture
def order() -> dict[str, Any]:
    return copy.deepcopy(ORDER)


@pytest.fixture
def api() -> ApiUnderTest:
    records, sfn = FakeRecords(), FakeStepFunctions()
    starter = SagaStarter(records, STATE_MACHINE_ARN, "OrderFulfillment", STEPS, sfn_client=sfn)
    return ApiUnderTest(records, sfn, build_resolver(OrderSagas(starter, records, max_request_bytes=MAX_REQUEST_BYTES)))
