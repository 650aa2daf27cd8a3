"""End to end on the local runtime: one synthesized stack deployed into moto for the whole package.

The cloud is package-scoped, and the modules that use it join an xdist group, so their tests run back to back on
one worker while moto is up, and no unit test (with its own moto) runs in between: "local_cloud" for most, and
"long_runs" for the fault matrix (on the other worker, with a cloud of its own there), followed by the soak. The soak,
the demo (in "local_cloud", for balance) and the deploy-local test (in no group) run their own moto in a subprocess.
"""

from __future__ import annotations

import time
import uuid

import pytest

from saga_testkit.pytest_plugin import cloud_fixtures
from statemachines import load_definition
from tests.e2e.orders import STOCK, TIME_SCALE, make_order
from tests.sagas.order_fulfillment.kit import SAGA_FILE

# The saga test kit's cloud fixtures (saga_testkit.pytest_plugin), kept to this package: unit tests start moto of
# their own in the same worker processes.
local_cloud, local_sagas_of, local_api = cloud_fixtures(scope="package")


@pytest.fixture(scope="session")
def saga_time_scale():
    return TIME_SCALE


@pytest.fixture(scope="package")
def local_sagas(local_sagas_of):
    """The order example on the package's cloud, its stock seeded for the orders of tests/e2e/orders.py."""
    sagas = local_sagas_of(load_definition(SAGA_FILE).name)
    sagas.kit.seed_stock(STOCK)
    return sagas


@pytest.fixture(scope="package")
def definition():
    return load_definition(SAGA_FILE)


@pytest.fixture
def saga_id():
    return f"saga-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def run_saga(local_sagas):
    """Start one saga, wait for it to finish, return its outcome; reconciliation must hold afterwards."""

    def run(saga_id, order=None, timeout_seconds=60):
        local_sagas.start(saga_id, order or make_order())
        assert local_sagas.wait([saga_id], timeout_seconds=timeout_seconds) == [], f"{saga_id} did not finish"
        outcome = local_sagas.outcome(saga_id)
        reconciliation = local_sagas.check()
        assert reconciliation.problems == [], reconciliation.problems
        return outcome

    return run


@pytest.fixture
def wait_until_quiet(local_sagas, operator):
    """Wait until every participant queue is empty (visible and in flight): every delivery, duplicates and late
    ones too, was handled."""

    def wait(within=30.0):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not any(operator.depth(mapping.queue_url) for mapping in local_sagas.cloud.mappings):
                return
            time.sleep(0.1)
        raise AssertionError("participant queues did not drain")

    return wait


@pytest.fixture(scope="package")
def operator(local_sagas):
    """The operator CLI's operations against the local cloud, names read from the deployed stack."""
    from saga_ops.deployment import Deployment
    from saga_ops.operations import SagaOperator

    return SagaOperator(Deployment.load(), poll_seconds=0.05)
