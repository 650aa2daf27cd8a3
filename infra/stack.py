"""The saga stack: composes the stores, one participant per service and one state machine per saga."""

from __future__ import annotations

from collections import defaultdict

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra import constants
from infra.constructs import (
    IdempotencyStore,
    Participant,
    ParticipantCommand,
    SagaStateMachine,
    SagaStore,
    SharedResources,
)
from infra.constructs.saga_api import SagaApi
from statemachines import SagaDefinition, load_definition


class SagaStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        definitions = [load_definition(path) for path in constants.SAGAS]

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
        for definition in definitions:
            saga = SagaStateMachine(
                self,
                definition,
                command_queues={name: consumer.queue for name, consumer in consumers.items()},
                saga_table=saga_store.table,
            )
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
                grouped[step.service][command] = ParticipantCommand(name=command, handler=step.handler(command))
    return {service: list(commands.values()) for service, commands in grouped.items()}
