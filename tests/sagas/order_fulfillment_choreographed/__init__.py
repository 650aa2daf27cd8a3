"""The OrderFulfillmentChoreographed example: its harness data (`kit`), the order example's with skus of its own."""
