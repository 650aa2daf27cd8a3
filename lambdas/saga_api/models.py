"""The API's request and query models: the one source of truth for what a valid request is.

The API Gateway request model (JSON schema, checked before the Lambda runs) is generated from `OrderRequest`
by `request_json_schema()`, so the gateway and the handler can never disagree about the contract.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# Step Functions execution names allow 1-80 characters; CloudWatch logging of executions wants only ASCII
# letters, digits, '-' and '_'. An idempotency key becomes the saga id and the execution name, so this pattern.
SAGA_ID_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"
MAX_SAGA_ID_LENGTH = 80
MAX_ORDER_LINES = 50
MAX_LIST_LIMIT = 100  # sagas per page of GET /orders
DEFAULT_LIST_LIMIT = 20

SagaId = Annotated[str, Field(pattern=SAGA_ID_PATTERN, min_length=1, max_length=MAX_SAGA_ID_LENGTH)]
Text = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    # Unknown fields are refused and types are not coerced: "2" is not a quantity.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Customer(_Strict):
    customer_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", min_length=1, max_length=64)]
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", min_length=3, max_length=254)]


class OrderItem(_Strict):
    sku: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1, le=1000)]
    unit_price_cents: Annotated[int, Field(ge=0, le=100_000_000)]


class Payment(_Strict):
    card_token: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$", min_length=1, max_length=128)]


class ShippingAddress(_Strict):
    name: Text
    line1: Text
    city: Text
    postal_code: Annotated[str, Field(min_length=1, max_length=20)]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$", min_length=2, max_length=2)]  # ISO 3166-1 alpha-2


class OrderRequest(_Strict):
    """Body of POST /orders: the OrderFulfillment saga's input."""

    order_id: SagaId
    customer: Customer
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=MAX_ORDER_LINES)]
    payment: Payment
    shipping_address: ShippingAddress


def request_json_schema() -> dict[str, Any]:
    """`OrderRequest` as JSON Schema draft 4 (what API Gateway models speak), references inlined."""
    schema = OrderRequest.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items() if key not in ("title", "description")}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {"$schema": "http://json-schema.org/draft-04/schema#", "title": "OrderRequest", **inline(schema)}
