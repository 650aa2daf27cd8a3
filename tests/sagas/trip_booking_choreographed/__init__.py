"""The TripBookingChoreographed example: its harness data (`kit`), the trip example's with flights and hotels of its
own."""
