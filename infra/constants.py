"""Every name and limit of the infrastructure in one place (plain values: importable without aws_cdk)."""

from pathlib import Path

from statemachines import saga_files

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = REPO_ROOT / "lambdas"
# Left out of the one code asset shared by every function.
LAMBDA_ASSET_EXCLUDES = ["tests", "**/tests", "__pycache__", "**/__pycache__", "*.pyc", "**/*.pyc"]
SAGAS = saga_files()  # paths of the *.saga.yaml definitions, one state machine each (SagaStack's default)

STACK_NAME = "SagaStack"
MAX_RESOURCES_PER_STACK = 500  # CloudFormation's quota of resources in one stack

# The Python the test suite runs on (deploy what is tested): no Python 3.14 installs on the development and CI
# machines (PyPI ships no CPython, Debian ships 3.11). cdk-nag's AwsSolutions-L1 (newest runtime) is acknowledged
# with this reason in infra/constructs/powertools_function.py; tests/infra/test_stack.py checks the two agree.
LAMBDA_RUNTIME = "python3.11"
LAMBDA_ARCHITECTURE = "x86_64"  # must match the Powertools layer below
FUNCTION_TIMEOUT_SECONDS = 30
# The API's handler answers within API Gateway's 29 s integration timeout, with room for the gateway's own work.
API_FUNCTION_TIMEOUT_SECONDS = 15
API_INTEGRATION_TIMEOUT_LIMIT_SECONDS = 29
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

# `cdk deploy -c deletionProtection=false` for a throwaway stack: the saga table and the participants' tables are then
# neither deletion-protected nor retained, and `cdk destroy` deletes them with the stack.
DELETION_PROTECTION_CONTEXT = "deletionProtection"

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
# What a participant's function may do: the item actions its code calls (tests/unit/participants/
# test_table_actions.py runs every service's action and compensation and compares).
# The domain table, through participant_toolkit.dynamodb.SagaTable (transactions need the per-item actions).
DOMAIN_TABLE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
)
# The idempotency table, through Powertools' DynamoDBPersistenceLayer; only items keyed "<service>.*".
IDEMPOTENCY_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")

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
API_THROTTLING_RATE_LIMIT = 100  # steady requests per second for the stage (StartExecution refills at 300/s)
API_THROTTLING_BURST_LIMIT = 200  # requests
API_FUNCTION_SERVICE_NAME = "SagaApi"  # Powertools service name of the API and reconciler functions
# Lambda takes 4 KB of environment variables per function, keys and values of all of them together (bytes). The API's
# variables other than SAGAS (the table name, limits, Powertools settings) stay below the second figure (bytes).
LAMBDA_ENVIRONMENT_LIMIT_BYTES = 4 * 1024
API_OTHER_VARIABLES_BYTES = 1024
# Step Functions takes at most 256 KiB (262,144 bytes) per state input/output. A saga carries its input and adds
# each step's result (the order's inventory step echoes the order lines) and error/cause texts, so an input may use a
# quarter of it: 65,536 bytes. Larger bodies are answered 413 before the body is parsed.
STEP_FUNCTIONS_PAYLOAD_LIMIT_BYTES = 256 * 1024
# A choreographed saga carries the same context in every event instead: EventBridge takes 256 KiB (262,144 bytes) per
# PutEvents entry, and SQS as much per message (the command a rule builds from the event adds under 1 KiB of its own
# fields). The input and its steps' results share it as under Step Functions, so the same quarter: 65,536 bytes.
EVENTBRIDGE_ENTRY_LIMIT_BYTES = 256 * 1024
MAX_REQUEST_BYTES = min(STEP_FUNCTIONS_PAYLOAD_LIMIT_BYTES, EVENTBRIDGE_ENTRY_LIMIT_BYTES) // 4
# Orphans (record written, StartExecution failed): the reconciler runs every RECONCILE_EVERY_MINUTES and starts
# sagas STARTED for longer than the grace period; past the give-up period it fails them (nothing ran).
RECONCILE_EVERY_MINUTES = 5
START_GRACE_SECONDS = 120  # seconds; a client retry normally comes first
START_GIVE_UP_SECONDS = 24 * 3600  # seconds
API_URL_OUTPUT = "ApiUrl"
# Admission control: one start-rate bucket per saga type, keyed by the saga type's name.
ADMISSION_TABLE_PARTITION_KEY = "saga_type"
# A choreographed saga's command queues (what its admission control reads: it has no state machine to read them from),
# a JSON list of queue URLs in an SSM parameter of this name, which the API reads once per execution environment.
ADMISSION_QUEUES_PARAMETER = "/{stack}/admission/{saga}/command-queues"
SSM_STANDARD_VALUE_LIMIT_BYTES = 4096  # an SSM standard-tier parameter's value, bytes
SSM_ADVANCED_VALUE_LIMIT_BYTES = 8192  # an advanced-tier one's (billed per parameter-month), bytes
# Minimum TLS 1.2 on the default execute-api endpoint (a REST API without one also accepts TLS 1.0).
API_SECURITY_POLICY = "TLS_1_2"
# `cdk deploy -c apiAllowedPrincipals=arn:aws:iam::111122223333:role/shop,444455556666`: a resource policy lets only
# these IAM principal ARNs and account ids call the API (IAM authorisation still applies). Unset: no resource policy.
API_ALLOWED_PRINCIPALS_CONTEXT = "apiAllowedPrincipals"

# --- choreographed sagas (infra/constructs/choreography.py) ---
TRACKER_HANDLER = "saga_tracker.handlers.track_saga_events"
TRACKER_SERVICE = "SagaTracker"  # POWERTOOLS_SERVICE_NAME of the tracker
# Deadline schedules go to EventBridge Scheduler's default group (the tracker may create schedules named
# SagaDeadline-* there only); each deletes itself once it fired.
DEADLINE_SCHEDULE_GROUP = "default"
SAGA_BUS_OUTPUT = "SagaBusName"

# --- operations (infra/constructs/saga_operations.py, monitoring.py) ---
OPERATIONS_SERVICE = "SagaOperations"  # POWERTOOLS_SERVICE_NAME of the detector and the reconciler
DETECTOR_HANDLER = "saga_operations.handlers.detect_stuck_sagas"
RECONCILER_HANDLER = "saga_operations.handlers.reconcile_execution_status"
DETECTOR_SCHEDULE_MINUTES = 1  # how often the stuck-saga detector runs, minutes
OPERATIONS_FUNCTION_TIMEOUT_SECONDS = 60
STUCK_SAGAS_RETENTION_DAYS = 14  # operators' queue of stuck-saga reports (the SQS maximum)
EVENT_TARGET_RETRY_ATTEMPTS = 8  # EventBridge retries of a failed delivery to the reconciler before its DLQ
EVENT_TARGET_MAX_EVENT_AGE_HOURS = 24
# Alarms: evaluated over one period; any breach notifies (a saga that needs a human must not wait), and each alarm
# says so again when it clears. Every alarm is named "<stack name>/<alarm>": the topic and key policies let CloudWatch
# publish for alarms of that name in this account and region only ("/" cannot appear in a stack name).
ALARM_PERIOD_MINUTES = 5
DLQ_ALARM_PERIOD_MINUTES = 1
QUEUE_AGE_PERIOD_MINUTES = 1
# A command waiting in its queue this share of its step's heartbeat window has the rest of the window left before the
# task times out unanswered (the window opens when the command is sent): alarm then, while there is time to act.
QUEUE_AGE_ALARM_SHARE_OF_HEARTBEAT = 0.5
# The detector runs every minute; none in this many minutes (or no data at all) means it is not running.
DETECTOR_SILENCE_MINUTES = 5
API_LATENCY_ALARM_MS = 5_000  # p99 of the whole request at the gateway, milliseconds
API_LATENCY_ALARM_PERIODS = 2  # consecutive 5-minute periods above it
# `cdk deploy -c alarmEmail=ops@example.com` subscribes e-mail addresses (comma-separated) to the alarm topic;
# `-c alarmEndpoint=<protocol>:<endpoint>` any other SNS protocol (https:https://..., sms:+49..., sqs:<queue ARN>,
# lambda:<function ARN>, application:<endpoint ARN>; comma-separated for several).
ALARM_EMAIL_CONTEXT = "alarmEmail"
ALARM_ENDPOINT_CONTEXT = "alarmEndpoint"
STUCK_SAGAS_OUTPUT = "StuckSagasQueueUrl"
ALARM_TOPIC_OUTPUT = "AlarmTopicArn"
DASHBOARD_OUTPUT = "DashboardName"
