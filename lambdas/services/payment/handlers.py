"""PaymentService participant: Lambda entry points, one per command of its saga steps."""

# The toolkit first: it imports Powertools' batch utility before pydantic (see participant_toolkit/__init__.py).
from participant_toolkit import ParticipantSettings, SagaParticipant

# isort: split
from .repository import PaymentRepository
from .service import PaymentService

settings = ParticipantSettings.from_env()
payments = PaymentService(PaymentRepository(settings.service_table_name))
participant = SagaParticipant(
    service="PaymentService",
    commands={
        "ProcessPayment": payments.process_payment,
        "RefundPayment": payments.refund_payment,
        "ChargeDeposit": payments.charge_deposit,
        "RefundDeposit": payments.refund_deposit,
    },
    settings=settings,
)

process_payment = participant.handler("ProcessPayment")
refund_payment = participant.handler("RefundPayment")
charge_deposit = participant.handler("ChargeDeposit")
refund_deposit = participant.handler("RefundDeposit")
