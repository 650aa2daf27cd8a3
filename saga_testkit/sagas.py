"""One saga type on a running LocalCloud: start sagas, inject faults, read outcomes, check the saga's invariants.

Any saga of the stack: an orchestrated saga's state machine is the stack's output `<Name>StateMachineArn`; a
choreographed saga starts on the saga bus (output `SagaBusName`), and what it did is read from the events on the bus
(saga_testkit.bus_observer); its services' tables are found
by service name in the functions' environments, and its kit (saga_testkit.kit, `tests/sagas/<snake>/kit.py`) gives
its sample inputs and its invariant check. Several `LocalSagas` on one cloud share its fault injector.
"""

from __future__ import annotations

from typing import Any

import boto3

from local_runtime.cloud import LocalCloud
from saga_records import SagaRecordRepository
from saga_records.starter import SagaSpec, SagaStarter, StartedSaga
from saga_testkit.bus_observer import BusObserver
from saga_testkit.faults import FaultInjector, fault_injector
from saga_testkit.invariants import SagaCheck
from saga_testkit.kit import SagaKit, load_kit
from saga_testkit.observe import (
    SagaOutcome,
    choreographed_outcome_of,
    execution_arn,
    outcome_of,
    wait_until_finished,
)
from statemachines import SagaDefinition


def named(definition: SagaDefinition, saga_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A request body that starts the saga `saga_id` through the API, and the Idempotency-Key it needs: the saga's
    `api.id_field` set in the body (no key), or, for a saga without one, the body as it is and the key."""
    if definition.id_field is not None:
        return {**body, definition.id_field: saga_id}, None
    return body, saga_id


class LocalSagas:
    def __init__(
        self, cloud: LocalCloud, definition: SagaDefinition, *, kit: SagaKit | None = None, observe: bool = True
    ) -> None:
        """`kit`: the saga's kit; by default the one its convention names (SagaKit's defaults when there is none).
        `observe=False`: no rule of the kit's own on the saga bus (a choreographed saga's outcome is then unread)."""
        self.cloud = cloud
        self.definition = definition
        self.records = SagaRecordRepository(cloud.output("SagaTableName"))
        steps = tuple(step.name for step in definition.steps)
        self.choreographed = definition.pattern == "choreography"
        if self.choreographed:
            self.state_machine_arn = None
            bus_name = cloud.output("SagaBusName")
            self.observer: BusObserver | None = BusObserver(bus_name, definition.name) if observe else None
            spec = SagaSpec(definition.name, None, steps, bus_name=bus_name)
        else:
            self.state_machine_arn = cloud.output(f"{definition.name}StateMachineArn")
            self.observer = None
            spec = SagaSpec(definition.name, self.state_machine_arn, steps)
        self.starter = SagaStarter(self.records, [spec])
        self.faults: FaultInjector = fault_injector(cloud)
        self.kit = kit or load_kit(definition, self.service_table)

    def service_table(self, service: str) -> str:
        """The table of `service` (PaymentService) on this stack, from its participant functions' environment."""
        for function in self.cloud.functions.values():
            if function.environment.get("POWERTOOLS_SERVICE_NAME") == service:
                return function.environment["SERVICE_TABLE_NAME"]
        raise KeyError(f"no participant function of {service} in the stack")

    def scale_out(self, environments_per_participant: int) -> None:
        """More warm environments consuming each of this saga's participant queues (for many concurrent sagas); the
        fault injector wraps their participants as they are built."""
        services = {step.service for step in self.definition.steps}
        for function in self.cloud.functions.values():
            if function.environment.get("POWERTOOLS_SERVICE_NAME") in services:
                self.cloud.scale_out(function, environments_per_participant)

    def start(self, saga_id: str, saga_input: dict[str, Any]) -> StartedSaga:
        return self.starter.start(self.definition.name, saga_id, saga_input)

    def wait(self, saga_ids: list[str], timeout_seconds: float = 60, on_finished: Any = None) -> list[str]:
        return wait_until_finished(
            self.records.get, self.state_machine_arn, saga_ids, timeout_seconds=timeout_seconds, on_finished=on_finished
        )

    def outcome(self, saga_id: str) -> SagaOutcome:
        record = self.records.get(saga_id)
        if record is None:
            raise KeyError(f"no saga record for {saga_id}")
        if self.observer is not None:
            return choreographed_outcome_of(self.observer, record)
        return outcome_of(self.definition, self.state_machine_arn, record)

    def execution(self, saga_id: str) -> dict[str, Any]:
        return boto3.client("stepfunctions").describe_execution(
            executionArn=execution_arn(self.state_machine_arn, saga_id)
        )

    def check(self) -> SagaCheck:
        """The kit's invariant check over this saga type's records (every other type's sagas named as others)."""
        records = self.records.scan_all()
        mine = [record for record in records if record.get("saga_type") == self.definition.name]
        others = frozenset(record["saga_id"] for record in records if record.get("saga_type") != self.definition.name)
        return self.kit.check(mine, others)
