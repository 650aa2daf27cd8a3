"""The saga stack: composes the stores, one participant per service, one state machine per saga, and operations
(stuck-saga detector, execution-status reconciler, alarms and dashboard)."""

from __future__ import annotations

from collections import defaultdict

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra import constants
from infra.constructs import (
    AlarmTopic,
    CommandQueue,
    IdempotencyStore,
    Monitoring,
    Participant,
    ParticipantCommand,
    SagaOperations,
    SagaStateMachine,
    SagaStore,
    SharedResources,
    StepMetrics,
)
from infra.constructs.saga_api import SagaApi
from statemachines import SagaDefinition
from statemachines.checks import load_sagas
from statemachines.deadline import saga_deadline_seconds


class SagaStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        definitions = load_sagas(constants.SAGAS)

        alarm_topic = AlarmTopic(self, "Notifications")
        saga_store = SagaStore(self, "SagaStore")
        idempotency_store = IdempotencyStore(self, "IdempotencyStore")
        shared = SharedResources(
            saga_table=saga_store.table,
            idempotency_table=idempotency_store.table,
            # One asset for every function: each handler is a module path inside lambdas/.
            code=lambda_.Code.from_asset(str(constants.LAMBDAS_DIR), exclude=constants.LAMBDA_ASSET_EXCLUDES),
            powertools_layer=lambda_.LayerVersion.from_layer_version_arn(
                self,
                "PowertoolsLayer",
                # Resolved at deploy time from AWS's public parameter: a template parameter, no lookup at synth.
                ssm.StringParameter.value_for_string_parameter(self, constants.POWERTOOLS_LAYER_PARAMETER),
            ),
        )

        # Consumers first: the state machines need their queue URLs, the functions then need the state machines.
        participants = [
            Participant(self, service, commands=commands, shared=shared)
            for service, commands in commands_by_service(definitions).items()
        ]
        consumers = {name: consumer for participant in participants for name, consumer in participant.consumers.items()}
        state_machines = {}
        api_functions: dict[str, lambda_.IFunction] = {}
        apis = {}
        for definition in definitions:
            saga = SagaStateMachine(
                self,
                definition,
                command_queues={name: consumer.queue for name, consumer in consumers.items()},
                saga_table=saga_store.table,
            )
            state_machines[definition.name] = saga.state_machine
            for step in definition.steps:
                for command in step.commands:
                    saga.state_machine.grant_task_response(consumers[command].function)
            CfnOutput(
                self,
                constants.state_machine_output(definition.name),
                value=saga.state_machine.state_machine_arn,
                description=f"{definition.name} saga state machine",
            )
            if definition.name == constants.API_SAGA:
                api = SagaApi(self, "OrdersApi", definition=definition, state_machine=saga.state_machine, shared=shared)
                CfnOutput(self, constants.API_URL_OUTPUT, value=api.api.url, description="Orders API (IAM-signed)")
                api_functions = {"OrdersApi": api.function, "OrdersApiReconciler": api.reconciler}
                apis["OrdersApi"] = api.api

        operations = SagaOperations(
            self,
            "SagaOperations",
            shared=shared,
            state_machines=list(state_machines.values()),
            deadlines={definition.name: saga_deadline_seconds(definition) for definition in definitions},
            alarm_topic=alarm_topic.topic,
            alarm_key=alarm_topic.key,
        )
        monitoring = Monitoring(
            self,
            "Monitoring",
            topic=alarm_topic,
            state_machines=state_machines,
            command_queues={
                name: CommandQueue(queue=consumer.queue, heartbeat_seconds=consumer.command.heartbeat_seconds)
                for name, consumer in consumers.items()
            },
            participant_services=[participant.service for participant in participants],
            detector=operations.detector,
            apis=apis,
            dead_letter_queues={
                **{f"{name}DLQ": consumer.dead_letter_queue for name, consumer in consumers.items()},
                **operations.dead_letter_queues,
            },
            functions={
                **{name: consumer.function for name, consumer in consumers.items()},
                **operations.functions,
                **api_functions,
            },
            steps=[
                StepMetrics(service=step.service, step=step.name, kind=kind)
                for definition in definitions
                for step in definition.steps
                for kind in (["action", "compensation"] if step.compensation else ["action"])
            ],
        )
        CfnOutput(
            self,
            constants.STUCK_SAGAS_OUTPUT,
            value=operations.stuck_sagas_queue.queue_url,
            description="Reports of stuck and parked sagas, for operators",
        )
        CfnOutput(
            self,
            constants.ALARM_TOPIC_OUTPUT,
            value=alarm_topic.topic.topic_arn,
            description="Every alarm and every stuck-saga notice: subscribe here (or deploy with -c alarmEmail=...)",
        )
        CfnOutput(
            self, constants.DASHBOARD_OUTPUT, value=monitoring.dashboard.dashboard_name, description="Saga dashboard"
        )
        CfnOutput(self, constants.SAGA_TABLE_OUTPUT, value=saga_store.table.table_name, description="Saga records")
        CfnOutput(
            self,
            constants.IDEMPOTENCY_TABLE_OUTPUT,
            value=idempotency_store.table.table_name,
            description="Powertools idempotency records",
        )


def commands_by_service(definitions: list[SagaDefinition]) -> dict[str, list[ParticipantCommand]]:
    """Every command of every saga, grouped by the service that handles it (a command shared by sagas once)."""
    grouped: dict[str, dict[str, ParticipantCommand]] = defaultdict(dict)
    for definition in definitions:
        for step in definition.steps:
            for command in step.commands:
                known = grouped[step.service].get(command)
                heartbeat = step.sla.heartbeat_seconds
                grouped[step.service][command] = ParticipantCommand(
                    name=command,
                    handler=step.handler(command),
                    heartbeat_seconds=min(heartbeat, known.heartbeat_seconds) if known else heartbeat,
                )
    return {service: list(commands.values()) for service, commands in grouped.items()}
