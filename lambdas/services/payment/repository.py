"""Payment's ledger table: `PAYMENT#<saga_id>` with a `CHARGE` and, once compensated, a `REFUND` item."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from participant_toolkit.dynamodb import Item, SagaTable

from .models import Charge, Ledger, Refund

CHARGE_SK = "CHARGE"
REFUND_SK = "REFUND"


def _ledger_pk(saga_id: str) -> str:
    return f"PAYMENT#{saga_id}"


class PaymentRepository:
    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        self._table = SagaTable(table_name, error_prefix="Payment", dynamodb=dynamodb)

    def get_ledger(self, saga_id: str) -> Ledger | None:
        """The saga's charge and refund, or None when neither exists."""
        return self._ledger(saga_id, self._table.query(_ledger_pk(saga_id)))

    def list_ledgers(self) -> list[Ledger]:
        items_by_saga: dict[str, list[Item]] = defaultdict(list)
        for item in self._table.scan_prefix("PAYMENT#"):
            items_by_saga[item["saga_id"]].append(item)
        return [ledger for saga_id, items in items_by_saga.items() if (ledger := self._ledger(saga_id, items))]

    def charge(self, saga_id: str, charge: Charge) -> Ledger:
        """Record the charge unless a charge or a refund (tombstone) exists; else ConditionFailed."""
        pk = _ledger_pk(saga_id)
        self._table.transact(
            self._table.put_op({"pk": pk, "sk": CHARGE_SK, "saga_id": saga_id, **charge.model_dump()}),
            self._table.absent_check_op(pk, REFUND_SK),
        )
        return Ledger(saga_id=saga_id, charge=charge)

    def refund(self, ledger: Ledger) -> Ledger:
        """Refund the whole charge, once."""
        assert ledger.charge is not None, "refund needs a charge; without one write the tombstone"
        refund = Refund(amount_cents=ledger.charge.amount_cents)
        self._table.put(
            {"pk": _ledger_pk(ledger.saga_id), "sk": REFUND_SK, "saga_id": ledger.saga_id, **refund.model_dump()}
        )
        return ledger.model_copy(update={"refund": refund})

    def write_refund_tombstone(self, saga_id: str) -> Ledger:
        """No charge was taken: a zero refund closes the ledger, unless a charge appeared (ConditionFailed)."""
        pk = _ledger_pk(saga_id)
        tombstone = Refund(amount_cents=0)
        self._table.transact(
            self._table.put_op({"pk": pk, "sk": REFUND_SK, "saga_id": saga_id, **tombstone.model_dump()}),
            self._table.absent_check_op(pk, CHARGE_SK),
        )
        return Ledger(saga_id=saga_id, refund=tombstone)

    @staticmethod
    def _ledger(saga_id: str, items: list[Item]) -> Ledger | None:
        entries = {item["sk"]: item for item in items}
        if not entries:
            return None
        charge, refund = entries.get(CHARGE_SK), entries.get(REFUND_SK)
        return Ledger(
            saga_id=saga_id,
            charge=Charge.model_validate(charge) if charge else None,
            refund=Refund.model_validate(refund) if refund else None,
        )
