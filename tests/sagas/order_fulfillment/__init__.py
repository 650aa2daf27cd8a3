"""The OrderFulfillment example: its harness data (`kit`) and its stock and money reconciliation."""
