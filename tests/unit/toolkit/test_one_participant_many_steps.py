"""One participant serves every command of its service: several steps, in several sagas, each through its own Lambda
entry point; a late action is undone by the compensation its own command names, and a retriable step needs none."""

from __future__ import annotations

import threading

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

import host_hooks
from participant_toolkit import SagaCommand, SagaParticipant
from saga_records import SagaRecordRepository, SagaStatus
from statemachines import parse_definition
from tests.unit.toolkit.harness import SAGA_TABLE, SagaDriver, context, sqs_event

pytestmark = pytest.mark.unit

SLA = {"timeout_seconds": 60, "heartbeat_seconds": 20}
# A second saga of the inventory service's (beside the order saga's reserve_inventory): hold a crate of stock for a
# transfer, then confirm the transfer (retriable: past the pivot, never compensated).
RESTOCK = {
    "name": "StockTransfer",
    "description": "Hold a crate for a transfer, then confirm it.",
    "steps": [
        {"name": "hold_crate", "service": "InventoryService", "action": "HoldCrate", "compensation": "ReleaseCrate"},
        {"name": "confirm_transfer", "service": "InventoryService", "action": "ConfirmTransfer", "retriable": True},
    ],
}


class Warehouse:
    """The inventory service's domain functions for both sagas, recording each call as (command, saga id)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def function(self, name: str):
        def run(command: SagaCommand) -> dict[str, str]:
            assert command.command == name  # each function gets its own command, the kind from the envelope
            self.calls.append((name, command.saga_id))
            return {"done": name}

        return run


@pytest.fixture
def warehouse() -> Warehouse:
    return Warehouse()


@pytest.fixture
def inventory_serving(settings, board, deliveries, warehouse):
    """`inventory_serving(*names)`: an inventory participant serving these commands (the warehouse's functions)."""

    def serving(*names: str) -> SagaParticipant:
        return SagaParticipant(
            service="InventoryService",
            commands={name: warehouse.function(name) for name in names},
            settings=settings,
            callbacks=board,
            records=SagaRecordRepository(SAGA_TABLE),
            idempotency_client=boto3.client("dynamodb"),
            deliveries=deliveries,
        )

    return serving


@pytest.fixture
def inventory(inventory_serving) -> SagaParticipant:
    """The inventory participant of both sagas: the order saga's commands and the transfer's."""
    return inventory_serving("ReserveItems", "ReleaseReservation", "HoldCrate", "ReleaseCrate", "ConfirmTransfer")


def _restock(board, records, **step_changes) -> SagaDriver:
    raw = {**RESTOCK, "steps": [{**step, "sla": SLA} for step in RESTOCK["steps"]]}
    raw["steps"][0] |= step_changes
    return SagaDriver(parse_definition(raw), board, records).start()


def test_each_command_of_either_saga_runs_its_own_function_through_its_own_entry_point(
    inventory, saga, board, records, warehouse
):
    # Given the order saga's first step and the transfer's, both owned by the inventory service
    transfer = _restock(board, records)
    order_body, transfer_body = saga.command("reserve_inventory"), transfer.command("hold_crate")
    # When each reaches its own function
    for body in (order_body, transfer_body):
        assert inventory.handler(body["command"])(sqs_event(body), context()) == {"batchItemFailures": []}
    # Then each ran its own domain function, was answered and marked on its own saga's record
    assert warehouse.calls == [("ReserveItems", saga.saga_id), ("HoldCrate", transfer.saga_id)]
    assert board.answered(order_body["task_token"]) == board.answered(transfer_body["task_token"]) == ["succeed"]
    assert saga.step_statuses()["reserve_inventory"] == transfer.step_statuses()["hold_crate"] == "SUCCEEDED"


def test_a_late_action_is_undone_by_the_compensation_its_command_names(inventory, board, records, warehouse):
    # Given a transfer whose crate hold timed out and was compensated before the hold's delivery ran
    transfer = _restock(board, records)
    late = transfer.command("hold_crate")
    assert late["compensation"] == "ReleaseCrate"  # the compiler names it in the action's envelope
    board.time_out(late["task_token"])
    compensation = transfer.command("hold_crate", "compensation")
    inventory.handle("ReleaseCrate", sqs_event(compensation), context())
    transfer.ends(SagaStatus.FAILED)
    # When the hold runs after all, and its success is refused
    response = inventory.handle("HoldCrate", sqs_event(late), context())
    # Then the participant undid it with the transfer's own compensation, not another step's of the service
    assert response == {"batchItemFailures": []}
    assert warehouse.calls == [
        ("ReleaseCrate", transfer.saga_id),
        ("HoldCrate", transfer.saga_id),
        ("ReleaseCrate", transfer.saga_id),
    ]


def test_a_late_action_whose_compensation_the_participant_does_not_serve_goes_back_to_sqs(
    inventory_serving, board, records
):
    # Given a participant built without the compensation of one of its actions, and that action late for its saga
    partial_inventory = inventory_serving("HoldCrate")
    transfer = _restock(board, records)
    late = transfer.command("hold_crate")
    board.time_out(late["task_token"])
    transfer.ends(SagaStatus.FAILED)
    # When its success is refused / Then it is not silently kept: the invocation fails and SQS gets it back (after
    # its receives, the DLQ and its alarm), naming what is missing
    with pytest.raises(BatchProcessingError) as failure:
        partial_inventory.handle("HoldCrate", sqs_event(late), context())
    assert "InventoryService serves no compensation ReleaseCrate" in str(failure.value.child_exceptions)


def test_a_retriable_step_needs_no_compensation_function_and_its_late_success_stands(
    inventory_serving, board, records, warehouse
):
    # Given a participant that serves only a retriable step's action (no compensation exists for it)
    confirmer = inventory_serving("ConfirmTransfer")
    transfer = _restock(board, records)
    inventory_hold = transfer.command("hold_crate")
    board.time_out(inventory_hold["task_token"])
    late = transfer.command("confirm_transfer")
    assert "compensation" not in late
    board.time_out(late["task_token"])  # its task timed out: Step Functions retries it
    # When the first attempt's success is refused / Then nothing is undone, and the command is done with
    assert confirmer.handle("ConfirmTransfer", sqs_event(late), context()) == {"batchItemFailures": []}
    assert warehouse.calls == [("ConfirmTransfer", transfer.saga_id)]


def test_a_participant_refuses_to_serve_a_command_it_was_not_given(settings):
    participant = SagaParticipant(service="InventoryService", commands={"HoldCrate": print}, settings=settings)
    with pytest.raises(ValueError, match="InventoryService serves HoldCrate; not ReleaseCrate"):
        participant.handler("ReleaseCrate")
    with pytest.raises(ValueError, match="at least one command"):
        SagaParticipant(service="InventoryService", commands={}, settings=settings)


def test_a_host_watching_an_import_is_told_of_every_participant_built_in_its_thread(settings):
    # Given participants built while a host watches this thread, one built in another thread meanwhile, one after
    def build(name: str) -> SagaParticipant:
        return SagaParticipant(service=name, commands={"Act": print}, settings=settings)

    elsewhere = []
    with host_hooks.watching() as built:
        first = build("FirstService")
        with host_hooks.watching() as inner:
            second = build("SecondService")
        thread = threading.Thread(target=lambda: elsewhere.append(build("OtherThreadService")))
        thread.start()
        thread.join()
    build("AfterService")
    # Then the host saw exactly those of its thread, inside its block, in order (an inner block its own)
    assert built == [first, second]
    assert inner == [second]
    assert elsewhere[0] not in built
