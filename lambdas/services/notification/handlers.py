"""NotificationService participant: Lambda entry points, one per command of its saga steps."""

# The toolkit first: it imports Powertools' batch utility before pydantic (see participant_toolkit/__init__.py).
from participant_toolkit import ParticipantSettings, SagaParticipant

# isort: split
from .repository import NotificationRepository
from .service import NotificationService

settings = ParticipantSettings.from_env()
notifications = NotificationService(NotificationRepository(settings.service_table_name))
participant = SagaParticipant(
    service="NotificationService",
    commands={
        "SendOrderConfirmation": notifications.send_order_confirmation,
        "SendCancellationNotice": notifications.send_cancellation_notice,
        "SendItinerary": notifications.send_itinerary,  # past the trip's pivot: no compensation
    },
    settings=settings,
)

send_order_confirmation = participant.handler("SendOrderConfirmation")
send_cancellation_notice = participant.handler("SendCancellationNotice")
send_itinerary = participant.handler("SendItinerary")
