"""One saga type on a running LocalCloud: start sagas, inject faults, read outcomes, reach the services' data."""

from __future__ import annotations

from typing import Any

import boto3

from local_runtime.cloud import LocalCloud
from saga_records import SagaRecordRepository
from saga_records.starter import SagaSpec, SagaStarter, StartedSaga
from saga_testkit.faults import FaultInjector
from saga_testkit.observe import SagaOutcome, execution_arn, outcome_of, wait_until_finished
from statemachines import SagaDefinition
from tests.sagas.order_fulfillment.kit import OrderShop, Reconciliation


def named(definition: SagaDefinition, saga_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A request body that starts the saga `saga_id` through the API, and the Idempotency-Key it needs: the saga's
    `api.id_field` set in the body (no key), or, for a saga without one, the body as it is and the key."""
    if definition.id_field is not None:
        return {**body, definition.id_field: saga_id}, None
    return body, saga_id


class LocalSagas:
    def __init__(self, cloud: LocalCloud, definition: SagaDefinition) -> None:
        self.cloud = cloud
        self.definition = definition
        self.records = SagaRecordRepository(cloud.output("SagaTableName"))
        self.state_machine_arn = cloud.output(f"{definition.name}StateMachineArn")
        steps = tuple(step.name for step in definition.steps)
        self.starter = SagaStarter(self.records, [SagaSpec(definition.name, self.state_machine_arn, steps)])
        self.faults = FaultInjector()
        for step in definition.steps:
            for participant in cloud.participants(step.service):
                self.faults.attach(participant)
        self.faults.attach_to_queues(cloud)
        # The example's services: their data, its stock, and its reconciliation (tests/sagas/order_fulfillment/kit.py).
        self.shop = OrderShop(self.service_table)

    def service_table(self, service: str) -> str:
        for function in self.cloud.functions.values():
            if function.environment.get("POWERTOOLS_SERVICE_NAME") == service:
                return function.environment["SERVICE_TABLE_NAME"]
        raise KeyError(service)

    def scale_out(self, environments_per_participant: int) -> None:
        """More warm environments consuming each participant queue (for many concurrent sagas), faults included."""
        for step in self.definition.steps:
            for function in self.cloud.functions.values():
                if function.environment.get("POWERTOOLS_SERVICE_NAME") == step.service:
                    self.cloud.scale_out(function, environments_per_participant)
            for participant in self.cloud.participants(step.service):
                self.faults.attach(participant)

    def seed_stock(self, stock: dict[str, int]) -> None:
        self.shop.seed_stock(stock)

    def start(self, saga_id: str, order: dict[str, Any]) -> StartedSaga:
        return self.starter.start(self.definition.name, saga_id, order)

    def wait(self, saga_ids: list[str], timeout_seconds: float = 60, on_finished: Any = None) -> list[str]:
        return wait_until_finished(
            self.records.get, self.state_machine_arn, saga_ids, timeout_seconds=timeout_seconds, on_finished=on_finished
        )

    def outcome(self, saga_id: str) -> SagaOutcome:
        record = self.records.get(saga_id)
        if record is None:
            raise KeyError(f"no saga record for {saga_id}")
        return outcome_of(self.definition, self.state_machine_arn, record)

    def execution(self, saga_id: str) -> dict[str, Any]:
        return boto3.client("stepfunctions").describe_execution(
            executionArn=execution_arn(self.state_machine_arn, saga_id)
        )

    def reconcile(self) -> Reconciliation:
        return self.shop.reconcile(self.records.scan_all())
