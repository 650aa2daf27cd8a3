"""cdk-nag (AwsSolutions) and cfn-lint on the synthesized stack, plus proof that both checks can fail."""

from __future__ import annotations

import json

import cfnlint.api
import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

import infra.nag
from infra import constants
from infra.app_factory import build_app

pytestmark = pytest.mark.infra

# W3005 (DependsOn already implied by a GetAtt): the CDK Lambda L2 adds DependsOn on the role it also GetAtt's.
# Redundant, not wrong, and not ours to change.
IGNORED_LINT_RULES = {"W3005"}
# The runtime is the Python the suite runs on, older than the newest the CDK knows (infra/constants.py).
RUNTIME_CHOICE = "AwsSolutions-L1"
API_CHOICES = {
    "AwsSolutions-COG4",
    "AwsSolutions-APIG3",
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
}


def nag_findings(report) -> list[tuple[str, str, str]]:
    """(rule, severity, construct path) of every violation in a cdk-nag report."""
    return [
        (violation.rule_name, violation.severity, resource.construct_path)
        for violation in report.violations
        for resource in violation.violating_resources
    ]


def test_synth_passes_validation(synthesized):
    assert synthesized.validation_error is None, synthesized.validation_error


def test_synth_validation_report_has_no_nag_findings(synthesized):
    # Errors also make the synth raise (previous test); warnings only land in this report.
    report = json.loads((synthesized.outdir / "validation-report.json").read_text(encoding="utf-8"))
    assert [plugin for plugin in report["pluginReports"] if plugin["violations"]] == []


def test_nag_pack_finds_nothing_unacknowledged_in_the_app(synthesized):
    report = AwsSolutionsChecks().validate_scope(synthesized.app)
    assert nag_findings(report) == []
    assert report.success


def test_nag_pack_reports_an_insecure_queue():
    # The check is live: the same pack flags a queue without TLS enforcement, DLQ or encryption.
    stack = Stack(App(), "Probe")
    sqs.Queue(stack, "Plain", encryption=sqs.QueueEncryption.UNENCRYPTED)
    rules = {rule for rule, _, _ in nag_findings(AwsSolutionsChecks().validate_scope(stack))}
    assert {"AwsSolutions-SQS2", "AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules


def test_every_acknowledgement_silences_a_real_finding(monkeypatch, tmp_path):
    """Build the stack with acknowledgements recorded instead of applied: each must match a finding, and the
    findings must be exactly the acknowledged ones (no stale acknowledgement, nothing else hidden)."""
    acknowledged: set[tuple[str, str]] = set()

    def record(construct, rule: str, reason: str) -> None:
        assert len(reason) >= 40, f"{rule} on {construct.node.path}: give a specific reason"
        acknowledged.add((rule, construct.node.path))

    monkeypatch.setattr(infra.nag, "acknowledge", record)
    app = build_app(str(tmp_path))  # constructed, not synthesized: the pack walks the construct tree
    findings = nag_findings(AwsSolutionsChecks().validate_scope(app))

    assert findings, "without acknowledgements the stack must have findings"
    # Only IAM wildcards the services force on us, the API's documented choices (IAM authorisation rather than
    # Cognito, no WAF, API Gateway's account-wide logging role) and the tested runtime are acknowledged; the rest is
    # fixed.
    assert all(
        rule.startswith("AwsSolutions-IAM5[") or rule in API_CHOICES or rule == RUNTIME_CHOICE
        for rule, _ in acknowledged
    )
    assert all(severity == "error" or rule in API_CHOICES for rule, severity, _ in findings)
    for rule, path in acknowledged:
        assert any(found == rule and where.startswith(f"{path}/") for found, _, where in findings), (rule, path)
    for found, _, where in findings:
        assert any(found == rule and where.startswith(f"{path}/") for rule, path in acknowledged), (found, where)


def test_cfn_lint_finds_no_problem(synthesized):
    template = (synthesized.outdir / f"{constants.STACK_NAME}.template.json").read_text(encoding="utf-8")
    matches = [match for match in cfnlint.api.lint(template) if match.rule.id not in IGNORED_LINT_RULES]
    assert [f"{match.rule.id} {match.message} ({'/'.join(map(str, match.path))})" for match in matches] == []
