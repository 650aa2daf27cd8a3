"""cdk-nag (v3) wiring and the few acknowledgements the stack needs, each with its reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

WILDCARD_RESOURCE = "AwsSolutions-IAM5[Resource::*]"


def add_nag_checks(app: App) -> None:
    """Run the AWS Solutions pack at synth; an unacknowledged error makes an in-process synth raise."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))
