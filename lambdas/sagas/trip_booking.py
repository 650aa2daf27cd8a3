"""The TripBooking saga's input: the trip a travel site posts to `POST /trips` (its `trip_id` names the saga).

No price is taken from the client: the fare and the room rate come from the airline's and the hotel's catalogs when
the seat and the room are held, and the deposit is their total. Strict: unknown fields are refused and types are not
coerced. The API Gateway request model is generated from this class.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_PASSENGERS = 9  # one booking (PNR) holds at most nine travellers
MAX_NIGHTS = 30
MAX_ROOMS = 9
Code = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,15}$", min_length=2, max_length=16)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Traveller(_Strict):
    traveller_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", min_length=1, max_length=64)]
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", min_length=3, max_length=254)]


class Flight(_Strict):
    flight_number: Code  # e.g. LH400, as the airline's catalog lists it
    passengers: Annotated[int, Field(ge=1, le=MAX_PASSENGERS)]


class Hotel(_Strict):
    hotel_id: Code  # e.g. BER-MITTE, as the hotel's catalog lists it
    rooms: Annotated[int, Field(ge=1, le=MAX_ROOMS)]
    nights: Annotated[int, Field(ge=1, le=MAX_NIGHTS)]


class Payment(_Strict):
    card_token: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$", min_length=1, max_length=128)]


class Input(_Strict):
    """Body of POST /trips."""

    # The saga id (`api.id_field`), so also a Step Functions execution name: 1-80 letters, digits, '-' and '_'.
    trip_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,80}$", min_length=1, max_length=80)]
    traveller: Traveller
    flight: Flight
    hotel: Hotel
    payment: Payment
