"""The OrderFulfillment saga's input: the order a shop posts to `POST /orders` (its `order_id` names the saga).

Strict: unknown fields are refused and types are not coerced ("2" is not a quantity). The API Gateway request model is
generated from this class, so the gateway and the handler can never disagree about the contract.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_ORDER_LINES = 50
Text = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Customer(_Strict):
    customer_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", min_length=1, max_length=64)]
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", min_length=3, max_length=254)]


class OrderItem(_Strict):
    """What the customer wants and how many; the price is the inventory catalog's, never the client's."""

    sku: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1, le=1000)]


class Payment(_Strict):
    card_token: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$", min_length=1, max_length=128)]


class ShippingAddress(_Strict):
    name: Text
    line1: Text
    city: Text
    postal_code: Annotated[str, Field(min_length=1, max_length=20)]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$", min_length=2, max_length=2)]  # ISO 3166-1 alpha-2


class Input(_Strict):
    """Body of POST /orders."""

    # The saga id (`api.id_field`), so also a Step Functions execution name: 1-80 letters, digits, '-' and '_'.
    order_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,80}$", min_length=1, max_length=80)]
    customer: Customer
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=MAX_ORDER_LINES)]
    payment: Payment
    shipping_address: ShippingAddress
