"""The item actions the trip's services call on their own tables are the ones the stack grants a participant
(infra.constants.DOMAIN_TABLE_ACTIONS): moto enforces no IAM, so every path is run here and its requests recorded."""

from __future__ import annotations

from typing import Any

import pytest

from infra import constants
from participant_toolkit.errors import PermanentFailure

pytestmark = pytest.mark.unit

TRANSACTION_PARTS = {"Put": "PutItem", "Update": "UpdateItem", "ConditionCheck": "ConditionCheckItem"}


def test_the_trip_services_call_only_granted_item_actions(
    dynamodb: Any, flights, hotels, payments, notifications, command_for, held_results
):
    recorded: list[str] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "TransactWriteItems":
            recorded.extend(TRANSACTION_PARTS[kind] for item in params["TransactItems"] for kind in item)
        else:
            recorded.append(model.name)

    dynamodb.meta.client.meta.events.register("provide-client-params.dynamodb", record)
    functions = {
        "HoldSeat": flights.hold_seat,
        "HoldRoom": hotels.hold_room,
        "ChargeDeposit": payments.charge_deposit,
        "RefundDeposit": payments.refund_deposit,
        "ReleaseRoom": hotels.release_room,
        "ReleaseSeat": flights.release_seat,
    }

    def run(command: str, saga_id: str, kind: str = "action") -> Any:
        return functions[command](command_for(command, kind=kind, saga_id=saga_id, results=held_results))

    # When every action and compensation of the trip's services runs: a trip booked to the end, one given back, and one
    # compensated before its actions arrived (the tombstones, then the late actions they refuse)
    payments.charge_deposit(command_for("ChargeDeposit", results=held_results))
    flights.issue_tickets(command_for("IssueTickets"))
    notifications.send_itinerary(command_for("SendItinerary", results={"issue_tickets": {"tickets": ["T-1"]}}))
    for action in ("HoldSeat", "HoldRoom", "ChargeDeposit"):
        run(action, "trip-undone")
    for saga_id in ("trip-undone", "trip-late"):
        for compensation in ("RefundDeposit", "ReleaseRoom", "ReleaseSeat"):
            run(compensation, saga_id, "compensation")
    for action in ("HoldSeat", "HoldRoom", "ChargeDeposit"):
        with pytest.raises(PermanentFailure):
            run(action, "trip-late")
    # Then each request is one the stack grants (AccessDenied on AWS otherwise)
    assert {"TransactWriteItems", "GetItem", "Query", "PutItem", "UpdateItem"} - {
        *recorded,
        "TransactWriteItems",
    } == set()
    assert {f"dynamodb:{name}" for name in recorded} <= set(constants.DOMAIN_TABLE_ACTIONS)
