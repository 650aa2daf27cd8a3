"""ShippingService participant: Lambda entry points for its saga command and its compensation."""

from participant_toolkit import ParticipantSettings, SagaParticipant
from shipping.repository import ShippingRepository
from shipping.service import ShippingService

settings = ParticipantSettings.from_env()
shipping = ShippingService(ShippingRepository(settings.service_table_name))
participant = SagaParticipant(
    service="ShippingService",
    action=shipping.create_shipment,
    compensation=shipping.cancel_shipment,
    settings=settings,
)

create_shipment = participant.action_handler
cancel_shipment = participant.compensation_handler
