"""NotificationService: writes the order confirmation to an outbox, and a cancellation notice on compensation."""
