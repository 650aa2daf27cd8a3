"""Admission control of the saga API (lambdas/saga_api/admission.py): the start-rate buckets' table, and the grants
the API function needs to decide, each on exactly what it reads or writes.

- the admission table: one item per saga type (`tat_us`), UpdateItem only (a conditional write per admitted start);
- each orchestrated saga's state machine: DescribeStateMachine, once per execution environment, for the queues it
  sends to;
- each choreographed saga's command queues parameter (SSM, the URLs of the queues its bus rules feed, written here at
  deploy): GetParameter, once per execution environment. A list that grows with the steps, so kept out of the
  function's environment, which Lambda holds to 4 KB and which already carries every saga's setting;
- each saga's participant command queues: GetQueueAttributes, for how many commands wait.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants

# A queue URL at its longest: the longest region's endpoint, an account, an 80-character queue name.
LONGEST_QUEUE_URL = len("https://sqs.ap-southeast-5.amazonaws.com/123456789012/") + 80


class AdmissionControl(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(
                name=constants.ADMISSION_TABLE_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            # A start-rate bucket per saga type: a few numbers that refill within seconds, nothing to keep.
            removal_policy=RemovalPolicy.DESTROY,
        )

    def publish_command_queues(self, saga_type: str, command_queues: Sequence[sqs.IQueue]) -> ssm.StringParameter:
        """The parameter naming a choreographed saga's command queues, for its backlog check: a standard one while their
        URLs fit it at their longest, else an advanced one; refused at synth, naming the saga, past that."""
        urls = list(dict.fromkeys(queue.queue_url for queue in command_queues))
        longest = len(json.dumps(["x" * LONGEST_QUEUE_URL] * len(urls)))
        if longest > constants.SSM_ADVANCED_VALUE_LIMIT_BYTES:
            raise ValueError(
                f"{saga_type}: its {len(urls)} command queues' URLs may outgrow the "
                f"{constants.SSM_ADVANCED_VALUE_LIMIT_BYTES} bytes of the SSM parameter its admission control reads"
            )
        standard = longest <= constants.SSM_STANDARD_VALUE_LIMIT_BYTES
        stack = Stack.of(self)
        return ssm.StringParameter(
            self,
            f"{saga_type}CommandQueues",
            parameter_name=constants.ADMISSION_QUEUES_PARAMETER.format(stack=stack.stack_name, saga=saga_type),
            description=f"The command queues of the choreographed saga {saga_type}: its admission control reads them",
            string_value=stack.to_json_string(urls),
            tier=ssm.ParameterTier.STANDARD if standard else ssm.ParameterTier.ADVANCED,
        )

    def grant_admitting(
        self,
        function: iam.IGrantable,
        state_machines: Sequence[sfn.IStateMachine],
        command_queues: Sequence[sqs.IQueue],
        queue_parameters: Sequence[ssm.IStringParameter] = (),
    ) -> None:
        self.table.grant(function, "dynamodb:UpdateItem")
        if queue_parameters:
            iam.Grant.add_to_principal(
                grantee=function,
                actions=["ssm:GetParameter"],
                resource_arns=[parameter.parameter_arn for parameter in queue_parameters],
            )
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["states:DescribeStateMachine"],
            resource_arns=[machine.state_machine_arn for machine in state_machines],
        )
        for queue in command_queues:
            queue.grant(function, "sqs:GetQueueAttributes")
