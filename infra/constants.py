"""Every name and limit of the infrastructure in one place (plain values: importable without aws_cdk)."""

from pathlib import Path

from statemachines import saga_files

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = REPO_ROOT / "lambdas"
# Left out of the one code asset shared by every function.
LAMBDA_ASSET_EXCLUDES = ["tests", "**/tests", "__pycache__", "**/__pycache__", "*.pyc", "**/*.pyc"]
SAGAS = saga_files()  # paths of the *.saga.yaml definitions, one state machine each

STACK_NAME = "SagaStack"

# Newest Python runtime in aws-cdk-lib 2.275 (cdk-nag AwsSolutions-L1 wants the newest the library knows).
LAMBDA_RUNTIME = "python3.14"
LAMBDA_ARCHITECTURE = "x86_64"  # must match the Powertools layer below
FUNCTION_TIMEOUT_SECONDS = 30
FUNCTION_MEMORY_MB = 256

# SQS in front of each participant command (AWS guidance for Lambda consumers).
VISIBILITY_TIMEOUT_SECONDS = 6 * FUNCTION_TIMEOUT_SECONDS  # at least 6x the consumer's timeout
MAX_RECEIVE_COUNT = 5  # deliveries before a message moves to the DLQ
DLQ_RETENTION_DAYS = 14  # the SQS maximum
BATCH_SIZE = 10  # messages per Lambda invocation

LOG_RETENTION = "ONE_MONTH"  # aws_logs.RetentionDays member name (30 days)
LOG_LEVEL = "INFO"
# `cdk deploy -c logLevel=DEBUG` changes the participants' log level without a code change.
LOG_LEVEL_CONTEXT = "logLevel"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

POWERTOOLS_METRICS_NAMESPACE = "Sagas"
POWERTOOLS_VERSION = "3.37.0"  # must match requirements-lambda.txt
# Public SSM parameter, published by AWS in every region, that holds the Powertools layer ARN.
POWERTOOLS_LAYER_PARAMETER = (
    f"/aws/service/powertools/python/{LAMBDA_ARCHITECTURE}/{LAMBDA_RUNTIME}/{POWERTOOLS_VERSION}"
)

# Saga record: one item per saga, listed by status through the GSI.
SAGA_TABLE_PARTITION_KEY = "saga_id"
SAGA_STATUS_INDEX = "by_status"
SAGA_STATUS_INDEX_PARTITION_KEY = "status"
SAGA_STATUS_INDEX_SORT_KEY = "created_at"
# Powertools Idempotency table layout (its defaults).
IDEMPOTENCY_PARTITION_KEY = "id"
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"
# Each participant's own domain table.
DOMAIN_TABLE_PARTITION_KEY = "pk"
DOMAIN_TABLE_SORT_KEY = "sk"

# CloudFormation outputs the local runtime and the demo look up.
SAGA_TABLE_OUTPUT = "SagaTableName"
IDEMPOTENCY_TABLE_OUTPUT = "IdempotencyTableName"


def state_machine_output(saga_name: str) -> str:
    """Output holding a saga's state machine ARN (OrderFulfillment -> OrderFulfillmentStateMachineArn)."""
    return f"{saga_name}StateMachineArn"


# --- The API front door (infra/constructs/saga_api.py) ---------------------------------------------------
# Who may call the API: IAM (SigV4-signed requests). An aws_apigateway.AuthorizationType member name; every method.
API_AUTHORIZATION = "IAM"
API_STAGE = "v1"
API_SAGA = "OrderFulfillment"  # the saga the API starts (its request model is the order)
API_THROTTLING_RATE_LIMIT = 100  # steady requests per second for the stage (StartExecution refills at 300/s)
API_THROTTLING_BURST_LIMIT = 200  # requests
API_FUNCTION_SERVICE_NAME = "SagaApi"  # Powertools service name of the API and reconciler functions
API_REQUEST_MODEL = "OrderRequest"
# Step Functions takes at most 256 KiB (262,144 bytes) per state input/output. The saga carries the order as
# its input and adds each step's result (inventory echoes the order lines) and error/cause texts, so an order
# may use a quarter of it: 65,536 bytes. Larger bodies are answered 413 before the body is parsed.
STEP_FUNCTIONS_PAYLOAD_LIMIT_BYTES = 256 * 1024
MAX_ORDER_REQUEST_BYTES = STEP_FUNCTIONS_PAYLOAD_LIMIT_BYTES // 4
# Orphans (record written, StartExecution failed): the reconciler runs every RECONCILE_EVERY_MINUTES and starts
# sagas STARTED for longer than the grace period; past the give-up period it fails them (nothing ran).
RECONCILE_EVERY_MINUTES = 5
START_GRACE_SECONDS = 120  # seconds; a client retry normally comes first
START_GIVE_UP_SECONDS = 24 * 3600  # seconds
API_URL_OUTPUT = "OrdersApiUrl"

# --- operations (infra/constructs/saga_operations.py, monitoring.py) ---
OPERATIONS_SERVICE = "SagaOperations"  # POWERTOOLS_SERVICE_NAME of the detector and the reconciler
DETECTOR_HANDLER = "saga_operations.handlers.detect_stuck_sagas"
RECONCILER_HANDLER = "saga_operations.handlers.reconcile_execution_status"
DETECTOR_SCHEDULE_MINUTES = 1  # how often the stuck-saga detector runs, minutes
OPERATIONS_FUNCTION_TIMEOUT_SECONDS = 60
STUCK_SAGAS_RETENTION_DAYS = 14  # operators' queue of stuck-saga reports (the SQS maximum)
EVENT_TARGET_RETRY_ATTEMPTS = 8  # EventBridge retries of a failed delivery to the reconciler before its DLQ
EVENT_TARGET_MAX_EVENT_AGE_HOURS = 24
# Alarms: evaluated over one period; any breach notifies (a saga that needs a human must not wait).
ALARM_PERIOD_MINUTES = 5
DLQ_ALARM_PERIOD_MINUTES = 1
STUCK_SAGAS_OUTPUT = "StuckSagasQueueUrl"
ALARM_TOPIC_OUTPUT = "AlarmTopicArn"
DASHBOARD_OUTPUT = "DashboardName"
