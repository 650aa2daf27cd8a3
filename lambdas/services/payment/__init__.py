"""PaymentService: charges the card for an order and refunds it on compensation (a ledger per saga)."""
