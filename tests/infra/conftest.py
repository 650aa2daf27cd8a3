"""Synthesize the CDK app once per test session; every infra test reads that one cloud assembly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra import constants  # first: points jsii at a supported Node before aws_cdk loads
from infra.app_factory import build_app
from statemachines import SagaDefinition, load_definition


@dataclass(frozen=True)
class Synthesized:
    app: Any  # aws_cdk.App, already synthesized
    outdir: Path
    template: dict[str, Any]  # SagaStack.template.json
    validation_error: str | None  # why the synth raised (cdk-nag errors); the template is written before that

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == resource_type
        }

    def logical_id(self, construct_path: str) -> str:
        """Logical id of the resource created at `construct_path` (e.g. InventoryService/Table)."""
        wanted = f"{constants.STACK_NAME}/{construct_path}/Resource"
        matches = [
            logical_id
            for logical_id, resource in self.template["Resources"].items()
            if resource.get("Metadata", {}).get("aws:cdk:path") == wanted
        ]
        assert len(matches) == 1, f"expected one resource at {wanted}, found {matches}"
        return matches[0]


# Every deploy-time choice at once, as `cdk deploy -c ...` would give them (one synth for all their tests).
DEPLOY_OPTIONS = {
    constants.ALARM_EMAIL_CONTEXT: "ops@example.com,oncall@example.com",
    constants.ALARM_ENDPOINT_CONTEXT: "https:https://hooks.example.com/alarms",
    constants.API_ALLOWED_PRINCIPALS_CONTEXT: "arn:aws:iam::111122223333:role/shop-backend,444455556666",
    constants.DELETION_PROTECTION_CONTEXT: "false",
}


def synthesize(outdir: Path, context: dict[str, object] | None = None) -> Synthesized:
    app = build_app(str(outdir), context=context)
    validation_error = None
    try:
        app.synth()
    except RuntimeError as error:  # an in-process synth raises on unacknowledged cdk-nag errors, report included
        if "ValidationFailed" not in str(error):
            raise
        validation_error = str(error)
    template = json.loads((outdir / f"{constants.STACK_NAME}.template.json").read_text(encoding="utf-8"))
    return Synthesized(app=app, outdir=outdir, template=template, validation_error=validation_error)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The stack as `make deploy` deploys it, with no deploy-time options."""
    return synthesize(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def synthesized_with_options(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The stack with every deploy-time option of DEPLOY_OPTIONS set."""
    return synthesize(tmp_path_factory.mktemp("cdk.out.options"), DEPLOY_OPTIONS)


@pytest.fixture(scope="session")
def definitions() -> list[SagaDefinition]:
    return [load_definition(path) for path in constants.SAGAS]


@pytest.fixture(scope="session")
def orchestrated(definitions: list[SagaDefinition]) -> list[SagaDefinition]:
    """The sagas a state machine runs (pattern: orchestration)."""
    return [definition for definition in definitions if definition.pattern == "orchestration"]


@pytest.fixture(scope="session")
def choreographed(definitions: list[SagaDefinition]) -> list[SagaDefinition]:
    """The sagas the saga bus runs (pattern: choreography)."""
    return [definition for definition in definitions if definition.pattern == "choreography"]


@pytest.fixture(scope="session")
def template(synthesized: Synthesized):
    from aws_cdk.assertions import Template

    return Template.from_json(synthesized.template)
