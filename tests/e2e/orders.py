"""Orders and settings shared by the end-to-end tests."""

from __future__ import annotations

import itertools

TIME_SCALE = 0.1  # local s per SLA s: a 120 s timeout lasts 12 s (shorter task windows are floored: moto_workarounds)
STOCK = {"SKU-KEYBOARD": 500, "SKU-MOUSE": 500, "SKU-SCARCE": 2}
_order_numbers = itertools.count(1)


def make_order(*, sku="SKU-KEYBOARD", quantity=1, card="tok_visa", country="DE", email_domain="example.com"):
    number = next(_order_numbers)
    return {
        "order_id": f"ord-{number:05d}",
        "customer": {"customer_id": f"c-{number}", "email": f"buyer{number}@{email_domain}"},
        "items": [{"sku": sku, "quantity": quantity}],
        "payment": {"card_token": card},
        "shipping_address": {
            "name": "Buyer",
            "line1": "1 Main St",
            "city": "Berlin",
            "postal_code": "10115",
            "country": country,
        },
    }
