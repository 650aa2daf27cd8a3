"""HotelService: HoldRoom takes rooms at the catalog's rate, once; ReleaseRoom gives them back, or leaves a tombstone
that refuses a late hold."""

from __future__ import annotations

import pytest

from participant_toolkit.errors import PermanentFailure
from services.hotel.models import RoomHoldStatus
from tests.sagas.trip_booking.conftest import NIGHTLY_RATE_CENTS

pytestmark = pytest.mark.unit


def test_a_hold_takes_the_rooms_at_the_catalog_s_rate_for_every_night(hotels, hotel_repository, command_for, saga_id):
    result = hotels.hold_room(command_for("HoldRoom"))
    assert (result["rooms"], result["nights"], result["total_cents"]) == (1, 3, 3 * NIGHTLY_RATE_CENTS)
    assert hotel_repository.get_hotel("BER-MITTE").available == 2
    assert hotel_repository.get_hold(saga_id).status is RoomHoldStatus.HELD
    # a duplicate answers the same and takes nothing more
    assert hotels.hold_room(command_for("HoldRoom")) == result
    assert hotel_repository.get_hotel("BER-MITTE").available == 2


@pytest.mark.parametrize(
    ("hotel", "error"),
    [
        ({"hotel_id": "BER-MITTE", "rooms": 4, "nights": 1}, "Hotel.NoVacancy"),
        ({"hotel_id": "NOWHERE", "rooms": 1, "nights": 1}, "Hotel.UnknownHotel"),
    ],
)
def test_a_hold_that_cannot_be_met_takes_nothing(hotels, hotel_repository, command_for, saga_id, trip, hotel, error):
    trip["hotel"] = hotel
    with pytest.raises(PermanentFailure) as refused:
        hotels.hold_room(command_for("HoldRoom", trip_input=trip))
    assert refused.value.error == error
    assert hotel_repository.get_hold(saga_id) is None
    assert hotel_repository.get_hotel("BER-MITTE").available == 3


def test_release_gives_the_rooms_back_once(hotels, hotel_repository, command_for):
    hotels.hold_room(command_for("HoldRoom"))
    hotels.release_room(command_for("ReleaseRoom", kind="compensation"))
    hotels.release_room(command_for("ReleaseRoom", kind="compensation"))
    assert hotel_repository.get_hotel("BER-MITTE").available == 3


def test_a_release_before_the_hold_leaves_a_tombstone_that_refuses_the_late_hold(hotels, hotel_repository, command_for):
    assert hotels.release_room(command_for("ReleaseRoom", kind="compensation"))["status"] == "RELEASED"
    with pytest.raises(PermanentFailure) as refused:
        hotels.hold_room(command_for("HoldRoom"))
    assert refused.value.error == "Hotel.HoldReleased"
    assert hotel_repository.get_hotel("BER-MITTE").available == 3
