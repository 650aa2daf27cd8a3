"""The TripBookingChoreographed saga's input: the same trip as TripBooking's (one contract, two patterns)."""

from .trip_booking import Input

__all__ = ["Input"]
