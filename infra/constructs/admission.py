"""Admission control of the saga API (lambdas/saga_api/admission.py): the start-rate buckets' table, and the grants
the API function needs to decide, each on exactly what it reads or writes.

- the admission table: one item per saga type (`tat_us`), UpdateItem only (a conditional write per admitted start);
- each saga's state machine: DescribeStateMachine, once per execution environment, for the queues it sends to;
- each saga's participant command queues: GetQueueAttributes, for how many commands wait.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants


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

    def grant_admitting(
        self,
        function: iam.IGrantable,
        state_machines: Sequence[sfn.IStateMachine],
        command_queues: Sequence[sqs.IQueue],
    ) -> None:
        self.table.grant(function, "dynamodb:UpdateItem")
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["states:DescribeStateMachine"],
            resource_arns=[machine.state_machine_arn for machine in state_machines],
        )
        for queue in command_queues:
            queue.grant(function, "sqs:GetQueueAttributes")
