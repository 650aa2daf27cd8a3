"""NotificationService: writes an order's confirmation to an outbox (a cancellation notice on compensation), and a
trip's itinerary."""
