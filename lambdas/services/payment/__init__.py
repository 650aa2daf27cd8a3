"""PaymentService: charges the card for an order, or a trip's deposit, and refunds it on compensation (a ledger per
saga)."""
