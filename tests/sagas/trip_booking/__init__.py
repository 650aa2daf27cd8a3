"""The TripBooking example: its harness data (`kit`), its seats, rooms and money reconciliation, and its services'
tests."""
