"""The OrderFulfillmentChoreographed saga's input: the same order as OrderFulfillment's (one contract, two patterns)."""

from .order_fulfillment import Input

__all__ = ["Input"]
