"""One Standard state machine per saga definition, compiled from its YAML at synth."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants, nag
from infra.constructs.participant import CommandRef
from infra.constructs.saga_store import grant_saga_items
from statemachines import SAGA_TABLE_KEY, SagaDefinition, compile_saga, queue_url_key


class SagaStateMachine(Construct):
    """Sends each command to its participant's queue and waits for the callback (Standard: `.waitForTaskToken`)."""

    def __init__(
        self,
        scope: Construct,
        definition: SagaDefinition,
        *,
        command_queues: Mapping[CommandRef, sqs.IQueue],
        saga_table: dynamodb.Table,
    ) -> None:
        super().__init__(scope, f"{definition.name}Saga")
        self.definition = definition
        # Each step's commands go to the queue of its own service's command (a command name is unique in a saga).
        queues = {
            command: command_queues[CommandRef(step.service, command)]
            for step in definition.steps
            for command in step.commands
        }
        substitutions = {queue_url_key(command): queue.queue_url for command, queue in queues.items()}
        substitutions[SAGA_TABLE_KEY] = saga_table.table_name
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,  # callbacks need Standard
            # Compact: the definition is a string inside the template, which CloudFormation caps at 1 MB.
            definition_body=sfn.DefinitionBody.from_string(json.dumps(compile_saga(definition), separators=(",", ":"))),
            definition_substitutions=substitutions,
            logs=sfn.LogOptions(
                destination=logs.LogGroup(self, "LogGroup", retention=logs.RetentionDays[constants.LOG_RETENTION]),
                level=sfn.LogLevel.ALL,
                # Execution data holds task tokens, which act as bearer credentials for the callback.
                include_execution_data=False,
            ),
            tracing_enabled=True,
        )
        for queue in queues.values():
            queue.grant_send_messages(self.state_machine)
        # RecordCompleted / RecordFailed / Park*: the terminal status, errors and the parked step.
        grant_saga_items(saga_table, self.state_machine, "dynamodb:UpdateItem")
        nag.acknowledge(
            self.state_machine.role,
            nag.WILDCARD_RESOURCE,
            "Logging to CloudWatch Logs needs the log-delivery actions (logs:CreateLogDelivery, ...) and tracing "
            "needs xray:PutTraceSegments and friends; neither service supports resource-level permissions.",
        )
