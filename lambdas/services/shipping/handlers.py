"""ShippingService participant: Lambda entry points for its saga command and its compensation."""

# The toolkit first: it imports Powertools' batch utility before pydantic (see participant_toolkit/__init__.py).
from participant_toolkit import ParticipantSettings, SagaParticipant

# isort: split
from .repository import ShippingRepository
from .service import ShippingService

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
