"""The saga stack: composes the stores, one participant per service, one state machine per orchestrated saga, the saga
bus with its rules and tracker for the choreographed ones, the API in front of every saga, and operations (stuck-saga
detector, execution-status reconciler, alarms and dashboards)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from aws_cdk import CfnOutput, CfnResource, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra import constants
from infra.constructs import (
    AlarmTopic,
    CommandQueue,
    CommandRef,
    IdempotencyStore,
    Monitoring,
    Participant,
    ParticipantCommand,
    SagaOperations,
    SagaStateMachine,
    SagaStore,
    SharedResources,
)
from infra.constructs.choreography import SagaChoreography
from infra.constructs.monitoring import SagaMonitoring
from infra.constructs.saga_api import SagaApi, SagaRoute
from statemachines import SagaDefinition, SagaDefinitionError
from statemachines.checks import load_sagas
from statemachines.deadline import saga_deadline_seconds


class SagaStack(Stack):
    """Every saga of `saga_files`, its participants' code (and each saga's input model) under `code_root`, which is
    also the one code asset of every function."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        saga_files: Sequence[Path] = constants.SAGAS,
        code_root: Path = constants.LAMBDAS_DIR,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        saga_files = list(saga_files)
        definitions = load_sagas(saga_files, code_root=code_root)

        alarm_topic = AlarmTopic(self, "Notifications")
        saga_store = SagaStore(self, "SagaStore")
        idempotency_store = IdempotencyStore(self, "IdempotencyStore")
        shared = SharedResources(
            saga_table=saga_store.table,
            idempotency_table=idempotency_store.table,
            # One asset for every function: each handler is a module path inside lambdas/.
            code=lambda_.Code.from_asset(str(code_root), exclude=constants.LAMBDA_ASSET_EXCLUDES),
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
        consumers = {ref: consumer for participant in participants for ref, consumer in participant.consumers.items()}
        orchestrated = [definition for definition in definitions if definition.pattern == "orchestration"]
        choreographed = [definition for definition in definitions if definition.pattern == "choreography"]
        choreography = (
            SagaChoreography(self, "Choreography", definitions=choreographed, consumers=consumers, shared=shared)
            if choreographed
            else None
        )
        state_machines = {}
        for definition in orchestrated:
            saga = SagaStateMachine(
                self,
                definition,
                command_queues={ref: consumer.queue for ref, consumer in consumers.items()},
                saga_table=saga_store.table,
            )
            state_machines[definition.name] = saga.state_machine
            for step in definition.steps:
                for command in step.commands:
                    saga.state_machine.grant_task_response(consumers[CommandRef(step.service, command)].function)
            CfnOutput(
                self,
                constants.state_machine_output(definition.name),
                value=saga.state_machine.state_machine_arn,
                description=f"{definition.name} saga state machine",
            )

        api = SagaApi(
            self,
            "SagaApi",
            sagas=[
                SagaRoute.of(
                    definition,
                    state_machines.get(definition.name),
                    code_root=code_root,
                    command_queues=[
                        consumers[CommandRef(step.service, command)].queue
                        for step in definition.steps
                        for command in step.commands
                    ],
                    bus=choreography.bus if choreography else None,
                )
                for definition in definitions
            ],
            shared=shared,
        )
        CfnOutput(self, constants.API_URL_OUTPUT, value=api.api.url, description="Every saga's API (IAM-signed)")

        operations = SagaOperations(
            self,
            "SagaOperations",
            shared=shared,
            state_machines=list(state_machines.values()),
            deadlines={definition.name: saga_deadline_seconds(definition) for definition in definitions},
            alarm_topic=alarm_topic.topic,
            alarm_key=alarm_topic.key,
        )
        command_queues = {
            ref.label: CommandQueue(queue=consumer.queue, heartbeat_seconds=consumer.command.heartbeat_seconds)
            for ref, consumer in consumers.items()
        }
        monitoring = Monitoring(
            self,
            "Monitoring",
            topic=alarm_topic,
            state_machines=state_machines,
            command_queues=command_queues,
            participant_services=[participant.service for participant in participants],
            detector=operations.detector,
            apis={"SagaApi": api.api},
            dead_letter_queues={
                **{f"{ref.label}.DLQ": consumer.dead_letter_queue for ref, consumer in consumers.items()},
                **operations.dead_letter_queues,
                **({f"{constants.TRACKER_SERVICE}.DLQ": choreography.dead_letter_queue} if choreography else {}),
            },
            functions={
                **{ref.label: consumer.function for ref, consumer in consumers.items()},
                **operations.functions,
                "SagaApi": api.function,
                "SagaApiReconciler": api.reconciler,
                **({constants.TRACKER_SERVICE: choreography.tracker} if choreography else {}),
            },
            sagas=[SagaMonitoring.of(definition) for definition in definitions],
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
            self,
            constants.DASHBOARD_OUTPUT,
            value=monitoring.dashboard.dashboard_name,
            description="Saga dashboard: every saga's executions, statuses, APIs and incidents (each saga's steps on "
            "a dashboard of its own, <stack>-<saga>)",
        )
        if choreography is not None:
            CfnOutput(
                self,
                constants.SAGA_BUS_OUTPUT,
                value=choreography.bus.event_bus_name,
                description="The saga bus of the choreographed sagas",
            )
        CfnOutput(self, constants.SAGA_TABLE_OUTPUT, value=saga_store.table.table_name, description="Saga records")
        CfnOutput(
            self,
            constants.IDEMPOTENCY_TABLE_OUTPUT,
            value=idempotency_store.table.table_name,
            description="Powertools idempotency records",
        )
        _check_capacity(self, saga_files, participants)


def _check_capacity(stack: Stack, saga_files: list[Path], participants: list[Participant]) -> None:
    """Refuse, naming the saga files, a set of sagas that one CloudFormation stack cannot hold (CDK's own refusal comes
    later, at synth, as a jsii traceback that names no file)."""
    resources = [node for node in stack.node.find_all() if isinstance(node, CfnResource)]
    if len(resources) <= constants.MAX_RESOURCES_PER_STACK:
        return
    commands = sum(len(participant.consumers) for participant in participants)
    per_command = sum(1 for node in participants[0].node.find_all() if isinstance(node, CfnResource)) / max(
        1, len(participants[0].consumers)
    )
    raise SagaDefinitionError(
        f"{', '.join(str(path) for path in saga_files)}: these sagas need {len(resources)} CloudFormation resources, "
        f"over the {constants.MAX_RESOURCES_PER_STACK} one stack holds: their {commands} participant commands take "
        f"about {per_command:.0f} each (a command shared by sagas counts once). Shorten or split the sagas, or share "
        "commands between them."
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
