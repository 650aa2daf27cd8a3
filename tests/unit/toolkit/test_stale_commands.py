"""Stale work is shed, not done: a command whose task ended while it waited in its queue (a backlog outlasted its
heartbeat window) is deleted without running its domain function, on its first receive. A fresh command sends no
heartbeat for it, and a redelivered one still runs, so every guarantee of the toolkit holds."""

from __future__ import annotations

import json

import pytest

from participant_toolkit import observability
from saga_records import StepStatus, metric_names
from tests.unit.toolkit.harness import INITIAL_STOCK, SKU, context, sqs_event

pytestmark = pytest.mark.unit

WINDOW = 6  # seconds of heartbeat window: a beat due every 2 s


@pytest.fixture
def fresh_metrics():
    observability.metrics.clear_metrics()


def _shed_counts(capsys) -> list[float]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    values = [line[metric_names.STALE_COMMANDS_SHED] for line in lines if metric_names.STALE_COMMANDS_SHED in line]
    return [value[0] if isinstance(value, list) else value for value in values]


def test_an_action_whose_task_ended_in_the_queue_is_shed_without_a_domain_call(
    saga, participants, board, services, requests, capsys, fresh_metrics
):
    # Given a reservation command that waited in its queue past its heartbeat window: its task timed out
    body = saga.command("reserve_inventory") | {"heartbeat_seconds": WINDOW}
    board.time_out(body["task_token"])
    # When it is picked up (first receive)
    with requests.window() as made:
        response = participants["InventoryService"].handler("ReserveItems")(
            sqs_event(body, sent_seconds_ago=WINDOW + 1), context()
        )
    # Then SQS deletes it (no batch item failure), and nothing ran: no DynamoDB request, no stock taken, no answer
    assert response == {"batchItemFailures": []}
    assert made == []
    assert services.inventory.get_stock(SKU) == INITIAL_STOCK
    assert services.inventory.get_reservation(saga.saga_id) is None
    assert board.answers == []
    assert board.refused == []
    assert saga.step_statuses()["reserve_inventory"] == StepStatus.RUNNING
    # And the shed command is counted
    assert _shed_counts(capsys) == [1]


def test_a_compensation_whose_task_ended_in_the_queue_is_shed(saga, participants, board, services, requests):
    # Given a release command whose task timed out while it waited (the state machine retries it with a fresh one)
    body = saga.command("reserve_inventory", "compensation") | {"heartbeat_seconds": WINDOW}
    board.time_out(body["task_token"])
    # When it is picked up / Then nothing ran: no tombstone, no COMPENSATING mark
    with requests.window() as made:
        response = participants["InventoryService"].handle(
            "ReleaseReservation", sqs_event(body, sent_seconds_ago=WINDOW + 1), context()
        )
    assert response == {"batchItemFailures": []}
    assert made == []
    assert services.inventory.get_reservation(saga.saga_id) is None
    assert saga.step_statuses()["reserve_inventory"] == StepStatus.RUNNING


def test_in_a_batch_only_the_stale_command_is_shed(saga_of, raw_definition, participants, board, services):
    # Given a batch of a stale command (its task ended) and one that waited as long but whose task still waits
    stale_saga, live_saga = saga_of(raw_definition), saga_of(raw_definition)
    stale = stale_saga.command("reserve_inventory") | {"heartbeat_seconds": WINDOW}
    live = live_saga.command("reserve_inventory") | {"heartbeat_seconds": WINDOW}
    board.time_out(stale["task_token"])
    # When the batch is handled
    response = participants["InventoryService"].handle(
        "ReserveItems", sqs_event(stale, live, sent_seconds_ago=WINDOW - 1), context()
    )
    # Then the live one beat on pick-up and ran; the stale one did not run
    assert response == {"batchItemFailures": []}
    assert board.beats == [live["task_token"]]
    assert board.answered(live["task_token"]) == ["succeed"]
    assert services.inventory.get_reservation(live_saga.saga_id) is not None
    assert services.inventory.get_reservation(stale_saga.saga_id) is None


def test_a_fresh_command_is_not_checked_it_runs_with_no_heartbeat(saga, participants, board, services):
    # Given a command sent a moment ago (within its first beat interval) / When it is handled
    body = saga.command("reserve_inventory") | {"heartbeat_seconds": WINDOW}
    participants["InventoryService"].handle("ReserveItems", sqs_event(body, sent_seconds_ago=0.5), context())
    # Then no heartbeat was spent to look at its task: one SendTask* call for the step
    assert board.beats == []
    assert board.answered(body["task_token"]) == ["succeed"]


def test_a_redelivered_command_whose_task_ended_still_runs_so_a_late_effect_is_undone(
    saga, participants, board, services
):
    # Given a reservation that an earlier receive may have made, redelivered after its task ended, while the saga
    # compensates the step (the record shows it COMPENSATING)
    body = saga.command("reserve_inventory") | {"heartbeat_seconds": WINDOW}
    board.time_out(body["task_token"])
    saga.records.compensation_started(saga.saga_id, "reserve_inventory")
    # When its second receive is handled
    response = participants["InventoryService"].handle(
        "ReserveItems", sqs_event(body, sent_seconds_ago=WINDOW + 1, receives=2), context()
    )
    # Then it is not shed: it ran, its refused success was undone by the step's compensation, and stock is whole
    assert response == {"batchItemFailures": []}
    assert board.refused == [("succeed", body["task_token"])]
    assert participants.undone == [("InventoryService", saga.saga_id)]
    assert services.inventory.get_stock(SKU) == INITIAL_STOCK
