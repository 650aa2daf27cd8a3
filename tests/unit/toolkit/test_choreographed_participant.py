"""The participant toolkit under choreography: a command from a bus rule is answered by claiming the step's outcome
on the saga record and publishing it on the bus; a refused claim is a late answer with orchestration's verdict; a
transient failure goes back to the command's own queue with a delay and its attempt counted. The order saga's
services, Powertools idempotency and the saga record on moto; the bus is a fake that keeps what was published."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from participant_toolkit import PermanentFailure, SagaParticipant, TransientFailure
from participant_toolkit.command import parse_command
from saga_records import SagaRecordRepository, StepStatus
from saga_records.events import SAGA_STARTED, SagaEventDetail
from services.inventory.models import ReservationStatus
from statemachines import choreography, load_definition
from tests.sagas.order_fulfillment.kit import SAGA_FILE
from tests.unit.toolkit.harness import SAGA_TABLE, context, order, sqs_event

pytestmark = pytest.mark.unit

DEFINITION = load_definition(SAGA_FILE.with_name("order_fulfillment_choreographed.saga.yaml"))


class FakeBus:
    def __init__(self) -> None:
        self.published: list[SagaEventDetail] = []

    def publish(self, detail: SagaEventDetail) -> None:
        self.published.append(detail)

    def detail_types(self) -> list[str]:
        return [detail.detail_type for detail in self.published]


class SentAgain:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], int]] = []

    def send_again(self, queue_arn: str, body: str, delay_seconds: int) -> None:
        self.sent.append((queue_arn, json.loads(body), delay_seconds))

    def redeliver_after(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        raise AssertionError("no lock is met here")


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


@pytest.fixture
def resent() -> SentAgain:
    return SentAgain()


@pytest.fixture
def participant_of(settings, services, bus, resent):
    def build(service: str, **replaced: Any) -> SagaParticipant:
        commands = {**services.domain[service], **replaced}
        return SagaParticipant(
            service=service,
            commands=commands,
            settings=settings,
            records=SagaRecordRepository(SAGA_TABLE),
            idempotency_client=boto3.client("dynamodb"),
            deliveries=resent,  # type: ignore[arg-type]
            bus=bus,  # type: ignore[arg-type]
        )

    return build


@pytest.fixture
def started(records):
    """A choreographed saga as the starter leaves it: its record written, its first step running."""
    saga_id = "chor-1"
    saga_input = order()
    steps = [step.name for step in DEFINITION.steps]
    records.create(saga_id=saga_id, saga_type=DEFINITION.name, steps=steps, saga_input=saga_input)
    records.mark_running(saga_id, "bus", steps[0])
    return saga_id, saga_input


def _rule_command(command: str, event: SagaEventDetail) -> dict[str, Any]:
    """The body the rule of `command` puts on its queue for `event`: its fields and the event's detail."""
    (reaction,) = [r for r in choreography.reactions(DEFINITION) if r.command == command]
    assert event.detail_type in reaction.on
    return {**choreography.command_fields(DEFINITION, reaction), "event": event.model_dump(mode="json")}


def _event(saga_id, saga_input, detail_type: str, **extra: Any) -> SagaEventDetail:
    if detail_type == SAGA_STARTED:
        return SagaEventDetail(
            saga_id=saga_id,
            saga_type=DEFINITION.name,
            kind="saga",
            outcome="Started",
            idempotency_key=f"{saga_id}#saga",
            input=saga_input,
        )
    step, _, outcome = detail_type.partition(".")
    kind = "compensation" if outcome.startswith("Compensat") else "action"
    return SagaEventDetail(
        saga_id=saga_id,
        saga_type=DEFINITION.name,
        step=step,
        kind=kind,
        outcome=outcome,
        idempotency_key=f"{saga_id}#{step}#{kind}",
        input=saga_input,
        **extra,
    )


def _deliver(participant: SagaParticipant, body: dict[str, Any]) -> dict[str, Any]:
    return participant.handle(body["command"], sqs_event(body), context())


def test_an_action_claims_its_step_then_publishes_its_success_with_the_results(started, participant_of, bus, records):
    saga_id, saga_input = started
    # Given the rule's command for ReserveItems, sent by Saga.Started
    body = _rule_command("ReserveItems", _event(saga_id, saga_input, SAGA_STARTED))
    # When the inventory participant handles it
    assert _deliver(participant_of("InventoryService"), body) == {"batchItemFailures": []}
    # Then the record holds the claim (the step SUCCEEDED, the next one RUNNING) and the success is on the bus
    steps = records.get(saga_id)["steps"]
    assert steps["reserve_inventory"]["status"] == StepStatus.SUCCEEDED
    assert steps["process_payment"]["status"] == StepStatus.RUNNING
    assert bus.detail_types() == ["reserve_inventory.Succeeded"]
    (event,) = bus.published
    assert event.results["reserve_inventory"] == steps["reserve_inventory"]["result"]
    assert event.input == saga_input


def test_a_duplicate_delivery_publishes_nothing_more(started, participant_of, bus):
    saga_id, saga_input = started
    body = _rule_command("ReserveItems", _event(saga_id, saga_input, SAGA_STARTED))
    participant = participant_of("InventoryService")
    _deliver(participant, body)
    _deliver(participant, body)
    assert bus.detail_types() == ["reserve_inventory.Succeeded"]


def test_a_rejection_claims_the_step_failed_and_publishes_the_failure(started, participant_of, bus, records):
    saga_id, saga_input = started

    def out_of_stock(command):
        raise PermanentFailure("Inventory.InsufficientStock", "none left")

    body = _rule_command("ReserveItems", _event(saga_id, saga_input, SAGA_STARTED))
    _deliver(participant_of("InventoryService", ReserveItems=out_of_stock), body)
    assert records.get(saga_id)["steps"]["reserve_inventory"]["status"] == StepStatus.FAILED
    (event,) = bus.published
    assert (event.detail_type, event.error) == ("reserve_inventory.Failed", "Inventory.InsufficientStock")


def test_a_success_after_the_deadline_is_undone_and_publishes_nothing(started, participant_of, bus, records, services):
    saga_id, saga_input = started
    # Given the tracker marked the first step timed out before the participant answered
    assert records.step_timed_out(saga_id, "reserve_inventory", error="States.Timeout", cause="deadline passed")
    body = _rule_command("ReserveItems", _event(saga_id, saga_input, SAGA_STARTED))
    # When the participant reserves the stock and claims the step
    _deliver(participant_of("InventoryService"), body)
    # Then its claim is refused: the reservation is released (as under orchestration), and nothing is published
    assert bus.published == []
    reservation = services.inventory.get_reservation(saga_id)
    assert reservation is not None
    assert reservation.status == ReservationStatus.RELEASED


def test_a_claim_found_on_the_record_is_published_again(started, participant_of, bus, records, services):
    saga_id, saga_input = started
    body = _rule_command("ReserveItems", _event(saga_id, saga_input, SAGA_STARTED))
    participant = participant_of("InventoryService")
    # Given an earlier delivery claimed the step and died before publishing (its idempotency record was not kept)
    result = services.domain["InventoryService"]["ReserveItems"](parse_command(json.dumps(body)))
    assert records.action_claimed(
        saga_id, "reserve_inventory", StepStatus.SUCCEEDED, next_step="process_payment", result=result
    )
    # When the command is delivered again
    _deliver(participant, body)
    # Then the success is published (consumers are idempotent), and nothing is undone
    assert bus.detail_types() == ["reserve_inventory.Succeeded"]
    assert services.inventory.get_reservation(saga_id).status == ReservationStatus.ACTIVE


def test_a_transient_failure_is_sent_again_with_its_attempt_then_fails_by_name(started, participant_of, bus, resent):
    saga_id, saga_input = started
    policy = DEFINITION.step("reserve_inventory").retry

    def unavailable(command):
        raise TransientFailure("Inventory.StoreUnavailable", "try later")

    participant = participant_of("InventoryService", ReserveItems=unavailable)
    body = _rule_command("ReserveItems", _event(saga_id, saga_input, SAGA_STARTED))
    # When every attempt fails transiently
    for _ in range(policy.max_attempts + 1):
        _deliver(participant, body)
        if resent.sent:
            _, body, delay = resent.sent[-1]
            assert 0 <= delay <= policy.max_delay_seconds
    # Then it was sent back to its own queue once per retry, the attempt counted, and then failed with the error's name
    assert [sent["attempt"] for _, sent, _ in resent.sent] == list(range(2, policy.max_attempts + 2))
    (event,) = bus.published
    assert (event.detail_type, event.error) == ("reserve_inventory.Failed", "Inventory.StoreUnavailable")


def test_a_compensation_publishes_its_outcome_with_the_sagas_error(started, participant_of, bus, records):
    saga_id, saga_input = started
    _deliver(
        participant_of("InventoryService"), _rule_command("ReserveItems", _event(saga_id, saga_input, SAGA_STARTED))
    )
    failed = _event(saga_id, saga_input, "process_payment.Failed", error="Payment.CardDeclined", cause="declined")
    _deliver(participant_of("InventoryService"), _rule_command("ReleaseReservation", failed))
    assert records.get(saga_id)["steps"]["reserve_inventory"]["status"] == StepStatus.COMPENSATED
    compensated = bus.published[-1]
    assert compensated.detail_type == "reserve_inventory.Compensated"
    assert compensated.saga_error == {"Error": "Payment.CardDeclined", "Cause": "declined"}


def test_a_command_whose_event_breaks_the_schema_is_dead_lettered_not_run(started, participant_of, bus):
    saga_id, saga_input = started
    body = _rule_command("ReserveItems", _event(saga_id, saga_input, SAGA_STARTED))
    body["event"]["surprise"] = True
    with pytest.raises(BatchProcessingError, match="surprise: extra_forbidden"):
        _deliver(participant_of("InventoryService"), body)  # the whole batch failed: SQS redelivers, then dead-letters
    assert bus.published == []


# --- forward recovery: a retriable step's action, as the trip saga choreographs it ------------------------------------

TRIP = load_definition(SAGA_FILE.with_name("trip_booking_choreographed.saga.yaml"))
RETRIABLE = next(step for step in TRIP.steps if step.retriable)
BEFORE_RETRIABLE = TRIP.steps[TRIP.steps.index(RETRIABLE) - 1]


class ForgetfulRecords:
    """The saga record, on which the first claim of an action vanishes (a lost answer): the step stays RUNNING."""

    def __init__(self, inner: SagaRecordRepository) -> None:
        self._inner = inner
        self.lost = 0

    def action_claimed(self, *args: Any, **kwargs: Any) -> bool:
        if not self.lost:
            self.lost += 1
            return True
        return self._inner.action_claimed(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def at_retriable(records):
    """A choreographed trip whose steps before its retriable step succeeded: that step is RUNNING."""
    saga_id, saga_input = "trip-1", {"trip_id": "trip-1"}
    steps = [step.name for step in TRIP.steps]
    records.create(saga_id=saga_id, saga_type=TRIP.name, steps=steps, saga_input=saga_input)
    records.mark_running(saga_id, "bus", steps[0])
    for index, step in enumerate(steps[: steps.index(RETRIABLE.name)]):
        assert records.action_claimed(saga_id, step, StepStatus.SUCCEEDED, next_step=steps[index + 1], result={})
    return saga_id, saga_input


def _trip_command(event: SagaEventDetail) -> dict[str, Any]:
    (reaction,) = [r for r in choreography.reactions(TRIP) if r.command == RETRIABLE.action]
    assert event.detail_type in reaction.on
    return {**choreography.command_fields(TRIP, reaction), "event": event.model_dump(mode="json")}


def _trip_event(saga_id: str, saga_input: dict[str, Any], step: str, outcome: str, **extra: Any) -> SagaEventDetail:
    return SagaEventDetail(
        saga_id=saga_id,
        saga_type=TRIP.name,
        step=step,
        kind="action",
        outcome=outcome,
        idempotency_key=f"{saga_id}#{step}#action",
        input=saga_input,
        **extra,
    )


def test_a_retriable_step_out_of_transient_retries_stalls_instead_of_failing(at_retriable, participant_of, bus, resent):
    saga_id, saga_input = at_retriable
    policy = RETRIABLE.retry
    error = policy.errors[0]

    def down(command):
        raise TransientFailure(error, "provider down")

    participant = participant_of(RETRIABLE.service, **{RETRIABLE.action: down})
    body = _trip_command(_trip_event(saga_id, saga_input, BEFORE_RETRIABLE.name, "Succeeded"))
    # When every attempt its policy allows fails transiently
    for _ in range(policy.max_attempts + 1):
        _deliver(participant, body)
        if resent.sent:
            _, body, _ = resent.sent[-1]
    # Then the step stalls (the saga parks for forward recovery), it does not fail (which would compensate)
    (event,) = bus.published
    assert (event.detail_type, event.error) == (f"{RETRIABLE.name}.Stalled", error)


def test_a_retriable_steps_refusal_is_published_as_its_failure(at_retriable, participant_of, bus):
    saga_id, saga_input = at_retriable

    def refused(command):
        raise PermanentFailure("Notification.RecipientRejected", "no such mailbox")

    participant = participant_of(RETRIABLE.service, **{RETRIABLE.action: refused})
    _deliver(participant, _trip_command(_trip_event(saga_id, saga_input, BEFORE_RETRIABLE.name, "Succeeded")))
    # (the tracker parks the saga on it: a retriable step is never compensated)
    assert bus.detail_types() == [f"{RETRIABLE.name}.Failed"]


def test_a_retried_request_is_answered_from_the_stored_outcome_once(at_retriable, participant_of, bus, records):
    saga_id, saga_input = at_retriable
    calls: list[str] = []

    def send(command):
        calls.append(command.idempotency_key)
        return {"sent": True}

    participant = participant_of(RETRIABLE.service, **{RETRIABLE.action: send})
    # Given the step ran and its answer was lost (its claim vanished, so its event never went out)
    participant.records = ForgetfulRecords(participant.records)
    _deliver(participant, _trip_command(_trip_event(saga_id, saga_input, BEFORE_RETRIABLE.name, "Succeeded")))
    bus.published.clear()
    assert records.get(saga_id)["steps"][RETRIABLE.name]["status"] == StepStatus.RUNNING
    # When the tracker requests it again after its deadline (its Retried, second attempt)
    retried = _trip_command(_trip_event(saga_id, saga_input, RETRIABLE.name, "Retried", attempt=2))
    _deliver(participant, retried)
    # Then its stored outcome is claimed and published, without running the domain again
    assert calls == [f"{saga_id}#{RETRIABLE.name}#action"]
    assert bus.detail_types() == [f"{RETRIABLE.name}.Succeeded"]
    assert records.get(saga_id)["steps"][RETRIABLE.name]["status"] == StepStatus.SUCCEEDED
    # And the same request delivered again finds the step answered: nothing more is published
    _deliver(participant, retried)
    assert bus.detail_types() == [f"{RETRIABLE.name}.Succeeded"]
