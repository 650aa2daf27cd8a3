"""The saga record as the source of truth for idempotent starts, and the reconciler that leaves no orphan:
the real repository on moto's DynamoDB (conditional put, the by_status index), StartExecution faked to fail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from saga_api.reconciler import START_FAILED_ERROR, OrphanReconciler
from saga_records import SagaRecordRepository, SagaStatus, repository
from saga_records.starter import SagaConflict, SagaStartDeferred, SagaStarter, request_hash
from tests.unit.api.fakes import ORDER, ORDERS, PARCEL, PARCELS, FakeStepFunctions
from tests.unit.tables import create_saga_table

pytestmark = pytest.mark.unit
GRACE_SECONDS, GIVE_UP_SECONDS = 120, 3600


@pytest.fixture
def saga_table(moto_sfn):
    create_saga_table("sagas")
    return SagaRecordRepository("sagas")


@pytest.fixture
def sfn():
    return FakeStepFunctions()


@pytest.fixture
def starter(saga_table, sfn):
    return SagaStarter(saga_table, [ORDERS, PARCELS], sfn_client=sfn)


@pytest.fixture
def reconciler(starter, saga_table):
    return OrphanReconciler(starter, saga_table, grace_seconds=GRACE_SECONDS, give_up_seconds=GIVE_UP_SECONDS)


def test_the_record_keeps_the_hash_of_the_request(starter, saga_table):
    starter.start("OrderFulfillment", "saga-1", ORDER)
    assert saga_table.get("saga-1")["request_hash"] == request_hash(ORDER)
    # The hash is of the canonical form: key order does not matter
    assert request_hash(dict(reversed(list(ORDER.items())))) == request_hash(ORDER)


def test_a_different_request_under_a_taken_id_conflicts_and_leaves_the_record_alone(starter, saga_table, sfn):
    starter.start("OrderFulfillment", "saga-1", ORDER)
    before = saga_table.get("saga-1")
    with pytest.raises(SagaConflict):
        starter.start("OrderFulfillment", "saga-1", {**ORDER, "order_id": "ord-other"})
    assert saga_table.get("saga-1") == before
    assert list(sfn.executions) == ["saga-1"]


def test_a_failed_start_leaves_the_record_started_for_a_retry(starter, saga_table, sfn):
    sfn.failures_left = 1
    with pytest.raises(SagaStartDeferred):
        starter.start("OrderFulfillment", "saga-1", ORDER)
    assert saga_table.get("saga-1")["status"] == "STARTED"
    started = starter.start("OrderFulfillment", "saga-1", ORDER)
    assert started.execution_arn.endswith(":saga-1")
    assert saga_table.get("saga-1")["status"] == "PENDING"


def test_the_reconciler_leaves_a_young_orphan_to_the_clients_retry(starter, saga_table, sfn, reconciler):
    # Given a saga whose StartExecution failed a moment ago
    sfn.failures_left = 1
    with pytest.raises(SagaStartDeferred):
        starter.start("OrderFulfillment", "saga-1", ORDER)
    # When the reconciler sweeps within the grace period / Then it waits
    sweep = reconciler.sweep()
    assert (sweep.started, sweep.failed) == ([], [])
    assert sfn.executions == {}


def test_the_reconciler_starts_an_orphan_past_the_grace_period(starter, saga_table, sfn, reconciler):
    sfn.failures_left = 1
    with pytest.raises(SagaStartDeferred):
        starter.start("OrderFulfillment", "saga-1", ORDER)
    later = datetime.now(UTC) + timedelta(seconds=GRACE_SECONDS + 1)
    sweep = reconciler.sweep(now=later)
    assert sweep.started == ["saga-1"]
    assert list(sfn.executions) == ["saga-1"]
    assert saga_table.get("saga-1")["status"] == "PENDING"
    # And a second sweep finds nothing left to do
    assert reconciler.sweep(now=later).started == []


def test_the_reconciler_retries_next_time_when_start_execution_still_fails(starter, saga_table, sfn, reconciler):
    sfn.failures_left = 2
    with pytest.raises(SagaStartDeferred):
        starter.start("OrderFulfillment", "saga-1", ORDER)
    later = datetime.now(UTC) + timedelta(seconds=GRACE_SECONDS + 1)
    assert reconciler.sweep(now=later).deferred == ["saga-1"]
    assert saga_table.get("saga-1")["status"] == "STARTED"
    assert reconciler.sweep(now=later).started == ["saga-1"]


def test_the_reconciler_fails_an_orphan_past_the_give_up_period(starter, saga_table, sfn, reconciler):
    sfn.failures_left = 1
    with pytest.raises(SagaStartDeferred):
        starter.start("OrderFulfillment", "saga-1", ORDER)
    much_later = datetime.now(UTC) + timedelta(seconds=GIVE_UP_SECONDS + 1)
    sweep = reconciler.sweep(now=much_later)
    assert sweep.failed == ["saga-1"]
    record = saga_table.get("saga-1")
    assert (record["status"], record["error"]) == ("FAILED", START_FAILED_ERROR)
    assert sfn.executions == {}
    # A late retry of the request gets the saga's (failed) status, and starts nothing
    assert starter.start("OrderFulfillment", "saga-1", ORDER).status == "FAILED"
    assert sfn.executions == {}


def test_running_sagas_are_not_the_reconcilers_business(starter, saga_table, sfn, reconciler):
    starter.start("OrderFulfillment", "saga-1", ORDER)
    sweep = reconciler.sweep(now=datetime.now(UTC) + timedelta(seconds=GIVE_UP_SECONDS + 1))
    assert (sweep.started, sweep.failed, sweep.deferred) == ([], [], [])
    assert saga_table.get("saga-1")["status"] == "PENDING"


def test_pages_by_status_come_newest_first_from_the_index(starter, saga_table):
    for number in range(3):
        starter.start("OrderFulfillment", f"saga-{number}", {**ORDER, "order_id": f"ord-{number}"})
    first, key = saga_table.page_by_status(SagaStatus.PENDING, limit=2)
    second, last = saga_table.page_by_status(SagaStatus.PENDING, limit=2, start_key=key)
    ids = [item["saga_id"] for item in first + second]
    assert sorted(ids) == ["saga-0", "saga-1", "saga-2"]
    created = [item["created_at"] for item in first + second]
    assert created == sorted(created, reverse=True)
    assert last is None or saga_table.page_by_status(SagaStatus.PENDING, limit=2, start_key=last)[0] == []


def test_the_reconciler_starts_each_orphan_on_its_own_types_state_machine(starter, saga_table, sfn, reconciler):
    # Given an order and a parcel whose starts both failed
    sfn.failures_left = 2
    with pytest.raises(SagaStartDeferred):
        starter.start("OrderFulfillment", "order-1", ORDER)
    with pytest.raises(SagaStartDeferred):
        starter.start("ParcelDelivery", "parcel-1", PARCEL)
    # When the reconciler sweeps past the grace period
    later = datetime.now(UTC) + timedelta(seconds=GRACE_SECONDS + 1)
    assert sorted(reconciler.sweep(now=later).started) == ["order-1", "parcel-1"]
    # Then each runs on its own state machine, its first step marked running
    assert saga_table.get("order-1")["execution_arn"].startswith(
        ORDERS.state_machine_arn.replace("stateMachine", "execution")
    )
    parcel = saga_table.get("parcel-1")
    assert parcel["execution_arn"].startswith(PARCELS.state_machine_arn.replace("stateMachine", "execution"))
    assert (parcel["current_step"], parcel["steps"]["pick_up"]["status"]) == ("pick_up", "RUNNING")


def test_an_orphan_of_a_type_the_starter_does_not_know_waits_for_the_give_up_period(saga_table, sfn):
    # Given a parcel left STARTED, and a reconciler whose stack no longer has the parcel saga
    saga_table.create(saga_id="parcel-9", saga_type="ParcelDelivery", steps=["pick_up"], saga_input=PARCEL)
    orders_only = OrphanReconciler(
        SagaStarter(saga_table, [ORDERS], sfn_client=sfn),
        saga_table,
        grace_seconds=GRACE_SECONDS,
        give_up_seconds=GIVE_UP_SECONDS,
    )
    # Then it is deferred (nothing started) until the give-up period fails it
    assert orders_only.sweep(now=datetime.now(UTC) + timedelta(seconds=GRACE_SECONDS + 1)).deferred == ["parcel-9"]
    assert orders_only.sweep(now=datetime.now(UTC) + timedelta(seconds=GIVE_UP_SECONDS + 1)).failed == ["parcel-9"]
    assert sfn.executions == {}


def _start_interleaved(starter, orders: int, parcels_between: int) -> list[str]:
    """Orders with parcels created between each two; the order ids, oldest first."""
    ids = []
    for number in range(orders):
        starter.start("OrderFulfillment", f"order-{number}", {**ORDER, "order_id": f"order-{number}"})
        ids.append(f"order-{number}")
        for other in range(parcels_between):
            starter.start("ParcelDelivery", f"parcel-{number}-{other}", {**PARCEL, "parcel": f"p-{number}-{other}"})
    return ids


def test_a_typed_listing_reads_past_other_types_until_its_page_is_full(starter, saga_table, monkeypatch):
    # Given orders far between parcels, and reads of 3 items at a time
    monkeypatch.setattr(repository, "TYPED_LIST_READ_ITEMS", 3)
    orders = _start_interleaved(starter, orders=5, parcels_between=4)
    # When orders are listed two at a time
    seen, key, pages = [], None, 0
    while True:
        page, key = saga_table.page_by_status(SagaStatus.PENDING, limit=2, start_key=key, saga_type="OrderFulfillment")
        assert all(item["saga_type"] == "OrderFulfillment" for item in page)
        seen += page
        pages += 1
        if key is None:
            break
    # Then every order shows once, newest first, in full pages, and no parcel
    assert sorted(item["saga_id"] for item in seen) == sorted(orders)
    assert [item["created_at"] for item in seen] == sorted((item["created_at"] for item in seen), reverse=True)
    assert pages == 3


def test_a_typed_listing_stops_after_its_reads_and_says_where_to_go_on(starter, saga_table, monkeypatch):
    # Given one order behind 12 parcels, reads of 3 items, at most 2 reads per listing
    monkeypatch.setattr(repository, "TYPED_LIST_READ_ITEMS", 3)
    monkeypatch.setattr(repository, "TYPED_LIST_MAX_READS", 2)
    starter.start("OrderFulfillment", "order-old", {**ORDER, "order_id": "order-old"})
    for number in range(12):
        starter.start("ParcelDelivery", f"parcel-{number}", {**PARCEL, "parcel": f"p-{number}"})
    # When listed / Then the first answer is empty but bounded, with a key; going on finds the order
    page, key = saga_table.page_by_status(SagaStatus.PENDING, limit=5, saga_type="OrderFulfillment")
    assert (page, key is not None) == ([], True)
    found = []
    while key is not None:
        page, key = saga_table.page_by_status(SagaStatus.PENDING, limit=5, start_key=key, saga_type="OrderFulfillment")
        found += [item["saga_id"] for item in page]
    assert found == ["order-old"]
