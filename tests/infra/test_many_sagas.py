"""The stack beyond the order example: commands scoped by the service that handles them, and monitoring that stays
within CloudWatch's quotas for several sagas of 40 steps (the definition limit).

Two apps, each synthesized once for the module:
- a SagaStack of two sagas from files and participant code written here (SagaStack takes both as parameters), in
  which two services each have a command `Notify`;
- the stack's Monitoring for four sagas of 40 steps each (50 commands, 10 compensatable steps each). Their participants
  are referenced, not built: a CloudFormation stack holds at most 500 resources, and a participant command takes 13
  (queue, DLQ, their TLS policies, function, role, policy, log group, event source mapping, 4 alarms), so no stack
  holds a 40-step saga's participants: building such a stack is refused, naming the saga files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cfnlint.api
import pytest
import yaml
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn

from infra import constants
from infra.app_factory import CDK_JSON, CLI_DEFAULT_CONTEXT
from infra.constructs import AlarmTopic, CommandQueue, CommandRef, Monitoring
from infra.constructs.monitoring import (
    MAX_METRICS_PER_DASHBOARD,
    MAX_METRICS_PER_GRAPH,
    MAX_WIDGETS_PER_DASHBOARD,
    SagaMonitoring,
)
from infra.nag import add_nag_checks
from infra.stack import SagaStack
from saga_records import metric_names
from statemachines import SagaDefinitionError, parse_definition
from statemachines.definition import snake_case
from tests.infra import wiring
from tests.infra.test_nag_and_lint import IGNORED_LINT_RULES

pytestmark = pytest.mark.infra

ACCOUNT_REGION = "123456789012:us-east-1"
SAGAS, STEPS, SERVICES, COMPENSATABLE_STEPS = 4, 40, 8, 10


def _step(name: str, service: str, action: str, compensation: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "service": service,
        "action": action,
        **({"compensation": compensation} if compensation else {"retriable": True}),
        "sla": {"timeout_seconds": 60, "heartbeat_seconds": 20},
    }


def _cdk_context() -> dict[str, Any]:
    """What build_app gives an app: cdk.json's feature flags and the CLI's metadata defaults."""
    return {**CLI_DEFAULT_CONTEXT, **json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})}


def _write_code(code_root: Path, definitions: list[dict[str, Any]]) -> None:
    """Participant modules defining a handler per command, and each saga's input model."""
    handlers: dict[str, set[str]] = {}
    for definition in definitions:
        for step in definition["steps"]:
            names = {step["action"], *([step["compensation"]] if "compensation" in step else [])}
            handlers.setdefault(step["service"], set()).update(names)
        module = code_root / "sagas" / f"{snake_case(definition['name'])}.py"
        module.parent.mkdir(parents=True, exist_ok=True)
        module.write_text("from pydantic import BaseModel\n\n\nclass Input(BaseModel):\n    ref: str\n")
    for service, commands in handlers.items():
        package = code_root / "services" / snake_case(service.removesuffix("Service"))
        package.mkdir(parents=True)
        (package / "handlers.py").write_text("".join(f"{snake_case(c)} = None\n" for c in sorted(commands)))


# --- two services, one command name ----------------------------------------------------------------------------------

NOTIFY_SAGAS = [
    {
        "name": "Lending",
        "description": "lend a book, then tell the member",
        "api": {"id_field": "ref"},
        "steps": [_step("lend", "LibraryService", "Lend", "Unlend"), _step("tell", "MemberService", "Notify")],
    },
    {
        "name": "Returning",
        "description": "take a book back, then tell the library",
        "api": {"path": "returns", "id_field": "ref"},
        "steps": [_step("take", "MemberService", "TakeBack", "GiveBack"), _step("tell", "LibraryService", "Notify")],
    },
]


@pytest.fixture(scope="module")
def notify_stack(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("notify")
    files = []
    for definition in NOTIFY_SAGAS:
        path = root / f"{snake_case(definition['name'])}.saga.yaml"
        path.write_text(yaml.safe_dump(definition))
        files.append(path)
    _write_code(root / "lambdas", NOTIFY_SAGAS)
    # Without the cdk-nag plugin (it doubles this synth's time): the wiring is what is checked here
    app = App(outdir=str(root / "cdk.out"), context=_cdk_context())
    SagaStack(app, constants.STACK_NAME, saga_files=files, code_root=root / "lambdas")
    app.synth()
    return json.loads((root / "cdk.out" / f"{constants.STACK_NAME}.template.json").read_text())


def _at(template: dict[str, Any], path: str) -> str:
    """The logical id of the resource at construct path `path` (below the stack)."""
    wanted = f"{constants.STACK_NAME}/{path}/Resource"
    (found,) = [k for k, r in template["Resources"].items() if r.get("Metadata", {}).get("aws:cdk:path") == wanted]
    return found


def test_a_command_name_two_services_share_is_wired_to_each_services_own_queue_and_function(notify_stack):
    resources = notify_stack["Resources"]
    machines = {
        name: resources[notify_stack["Outputs"][constants.state_machine_output(name)]["Value"]["Ref"]]
        for name in ("Lending", "Returning")
    }
    # Then each saga's Notify goes to the queue of the service its step names, and each queue has its own function
    for saga, service in (("Lending", "MemberService"), ("Returning", "LibraryService")):
        substitution = machines[saga]["Properties"]["DefinitionSubstitutions"]["NotifyQueueUrl"]
        assert substitution == {"Ref": _at(notify_stack, f"{service}/Notify/Queue")}, saga
        function = resources[_at(notify_stack, f"{service}/Notify/Function")]["Properties"]
        assert function["Handler"] == f"services.{snake_case(service.removesuffix('Service'))}.handlers.notify"
        assert function["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == service
    # And each is alarmed under its own name
    names = {r["Properties"]["AlarmName"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"}
    for service in ("MemberService", "LibraryService"):
        for alarm in ("Notify.DLQDepth", "NotifyQueueAge", "NotifyErrors"):
            assert f"{constants.STACK_NAME}/{service}.{alarm}" in names


def test_no_queue_or_function_is_left_orphaned_and_every_edge_is_allowed(notify_stack):
    # Every command queue is read by a function and sent to by a state machine, and IAM allows each edge
    audited = wiring.audit(notify_stack, wiring.table_uses((), (), (), ()))
    queues_fed = {edge.target for edge in audited if edge.kind == "state machine -> queue -> key"}
    queues_read = {edge.target for edge in audited if edge.kind == "event source mapping -> queue"}
    assert queues_fed == queues_read
    assert len(queues_fed) == sum(len(s["steps"]) + sum("compensation" in t for t in s["steps"]) for s in NOTIFY_SAGAS)
    assert [failure for edge in audited for failure in edge.failures] == []


def test_a_participant_command_takes_thirteen_resources(notify_stack):
    # What the README's "how much one stack holds" counts: the command's own resources and its four alarms
    for service, command in (("MemberService", "Notify"), ("LibraryService", "Notify"), ("LibraryService", "Lend")):
        own = [
            r["Type"]
            for r in notify_stack["Resources"].values()
            if r.get("Metadata", {}).get("aws:cdk:path", "").startswith(f"{constants.STACK_NAME}/{service}/{command}/")
        ]
        alarms = [
            r
            for r in notify_stack["Resources"].values()
            if r["Type"] == "AWS::CloudWatch::Alarm"
            and re.fullmatch(
                rf"{constants.STACK_NAME}/{service}\.{command}(\.DLQ)?[A-Z]\w+", r["Properties"]["AlarmName"]
            )
        ]
        assert sorted(own) == sorted(
            [
                *["AWS::SQS::Queue", "AWS::SQS::QueuePolicy"] * 2,
                *["AWS::Lambda::Function", "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::Logs::LogGroup"],
                "AWS::Lambda::EventSourceMapping",
            ]
        ), (service, command)
        assert len(alarms) == 4, (service, command)
        assert len(own) + len(alarms) == 13


def test_every_saga_of_the_files_gets_its_route(notify_stack):
    paths = {
        r["Properties"]["PathPart"]
        for r in notify_stack["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::Resource"
    }
    assert {"lending", "returns"} <= paths


# --- monitoring for several 40-step sagas ----------------------------------------------------------------------------


def _many_definitions():
    """Four sagas of 40 steps over the same 50 commands of 8 services (steps named per saga): 10 compensatable steps
    each (as many as one CloudWatch alarm expression could sum), then 30 retriable ones."""
    return [
        parse_definition(
            {
                "name": f"Long{number}",
                "description": "forty steps",
                "steps": [
                    _step(
                        f"l{number}_s{k:02d}",
                        f"Part{k % SERVICES}Service",
                        f"Do{k:02d}",
                        f"Undo{k:02d}" if k < COMPENSATABLE_STEPS else None,
                    )
                    for k in range(STEPS)
                ],
            }
        )
        for number in range(SAGAS)
    ]


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> dict[str, Any]:
    definitions = _many_definitions()
    outdir = tmp_path_factory.mktemp("many")
    app = App(outdir=str(outdir), context=_cdk_context())
    stack = Stack(app, constants.STACK_NAME)
    arn = f"arn:aws:{{}}:{ACCOUNT_REGION.split(':')[1]}:{ACCOUNT_REGION.split(':')[0]}:{{}}"
    refs = sorted({CommandRef(s.service, c) for d in definitions for s in d.steps for c in s.commands})
    queues = {
        ref: sqs.Queue.from_queue_arn(stack, f"{ref.label}Q", arn.format("sqs", f"q{i}")) for i, ref in enumerate(refs)
    }
    dlqs = {
        ref: sqs.Queue.from_queue_arn(stack, f"{ref.label}D", arn.format("sqs", f"d{i}")) for i, ref in enumerate(refs)
    }
    functions = {
        ref: lambda_.Function.from_function_arn(stack, f"{ref.label}F", arn.format("lambda", f"function:f{i}"))
        for i, ref in enumerate(refs)
    }
    machines = {
        d.name: sfn.StateMachine.from_state_machine_arn(stack, d.name, arn.format("states", f"stateMachine:{d.name}"))
        for d in definitions
    }
    Monitoring(
        stack,
        "Monitoring",
        topic=AlarmTopic(stack, "Notifications"),
        state_machines=machines,
        command_queues={ref.label: CommandQueue(queue=queues[ref], heartbeat_seconds=20) for ref in refs},
        dead_letter_queues={f"{ref.label}.DLQ": dlqs[ref] for ref in refs},
        functions={ref.label: functions[ref] for ref in refs},
        participant_services=sorted({ref.service for ref in refs}),
        detector=lambda_.Function.from_function_arn(stack, "Detector", arn.format("lambda", "function:detector")),
        apis={},
        sagas=[SagaMonitoring.of(definition) for definition in definitions],
    )
    add_nag_checks(app)
    app.synth()
    template = json.loads((outdir / f"{constants.STACK_NAME}.template.json").read_text(encoding="utf-8"))
    return {"outdir": outdir, "template": template, "definitions": definitions, "refs": refs}


def _dashboards(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::CloudWatch::Dashboard":
            body = resource["Properties"]["DashboardBody"]
            if isinstance(body, dict):
                separator, parts = body["Fn::Join"]
                body = separator.join(
                    part if isinstance(part, str) else part.get("Ref") or part["Fn::GetAtt"][0] for part in parts
                )
            found[resource["Properties"]["DashboardName"]] = json.loads(body)["widgets"]
    return found


def test_many_long_sagas_synthesize_clean_of_cdk_nag_and_cfn_lint(many):
    # cdk-nag ran in the synth (an error would have raised); warnings land in its report
    report = json.loads((many["outdir"] / "validation-report.json").read_text(encoding="utf-8"))
    assert [plugin for plugin in report["pluginReports"] if plugin["violations"]] == []
    matches = [m for m in cfnlint.api.lint(json.dumps(many["template"])) if m.rule.id not in IGNORED_LINT_RULES]
    assert [f"{m.rule.id} {m.message}" for m in matches] == []


def test_no_alarm_reads_more_than_ten_metrics(many):
    alarms = [r["Properties"] for r in many["template"]["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    # Every command's queue age, DLQ depth, errors and throttles, and a few for the stack: none sums over steps
    assert len(alarms) >= 4 * len(many["refs"])
    assert all(len(alarm.get("Metrics", [])) <= 10 for alarm in alarms)


def test_every_dashboard_stays_within_cloudwatchs_quotas(many):
    dashboards = _dashboards(many["template"])
    assert set(dashboards) == {f"{constants.STACK_NAME}-sagas"} | {
        f"{constants.STACK_NAME}-{d.name}" for d in many["definitions"]
    }
    for name, widgets in dashboards.items():
        counts = [len(widget["properties"].get("metrics", [])) for widget in widgets]
        assert len(widgets) <= MAX_WIDGETS_PER_DASHBOARD, name
        assert max(counts) <= MAX_METRICS_PER_GRAPH, name
        assert sum(counts) <= MAX_METRICS_PER_DASHBOARD, name
    # The quotas as CloudWatch documents them (dashboards: 500 widgets, 500 metrics per graph, 2,500 in all)
    assert (MAX_WIDGETS_PER_DASHBOARD, MAX_METRICS_PER_GRAPH, MAX_METRICS_PER_DASHBOARD) == (500, 500, 2_500)


def _plotted_dimensions(widgets: list[dict[str, Any]], title: str, metric: str) -> list[dict[str, str]]:
    found = []
    for widget in widgets:
        if not re.fullmatch(rf"{re.escape(title)}( \(\d+/\d+\))?", widget["properties"]["title"]):
            continue
        for line in widget["properties"]["metrics"]:
            names = [item for item in line if not isinstance(item, dict)]
            if len(names) >= 2 and names[1] == metric:
                found.append(dict(zip(names[2::2], names[3::2], strict=True)))
    return found


def test_every_step_of_every_saga_has_its_rows_on_its_sagas_dashboard(many):
    dashboards = _dashboards(many["template"])
    for definition in many["definitions"]:
        widgets = dashboards[f"{constants.STACK_NAME}-{definition.name}"]
        latency = _plotted_dimensions(widgets, f"{definition.name}: step latency p50 / p99 (ms)", "StepDuration")
        failed = _plotted_dimensions(widgets, f"{definition.name}: step failure rate (%)", metric_names.STEP_FAILED)
        compensated = _plotted_dimensions(widgets, f"{definition.name}: compensations run", metric_names.STEP_SUCCEEDED)
        queues = _plotted_dimensions(
            widgets, f"{definition.name}: oldest command waiting per queue (s)", "ApproximateAgeOfOldestMessage"
        )
        for step in definition.steps:
            action = {"service": step.service, "step": step.name, "kind": "action"}
            assert latency.count(action) == 2, step.name  # p50 and p99
            assert failed.count(action) == 1, step.name
            assert compensated.count({**action, "kind": "compensation"}) == (1 if step.compensation else 0), step.name
        assert len(queues) == STEPS + COMPENSATABLE_STEPS  # every command queue of the saga


# --- more than one stack holds ---------------------------------------------------------------------------------------


def test_sagas_a_stack_cannot_hold_are_refused_naming_their_files(tmp_path):
    # Given a saga of 40 compensatable steps over four services (80 participant commands)
    steps = [
        _step(f"step_{index:02d}", f"Part{index % 4}Service", f"Do{index:02d}", f"Undo{index:02d}")
        for index in range(40)
    ]
    definition = {"name": "Huge", "description": "forty steps", "api": {"id_field": "ref"}, "steps": steps}
    path = tmp_path / "huge.saga.yaml"
    path.write_text(yaml.safe_dump(definition))
    _write_code(tmp_path / "lambdas", [definition])
    # When the stack is built / Then it is refused before any synth, naming the file, the count and the quota
    app = App(outdir=str(tmp_path / "cdk.out"), context=_cdk_context())
    with pytest.raises(SagaDefinitionError) as refused:
        SagaStack(app, constants.STACK_NAME, saga_files=[path], code_root=tmp_path / "lambdas")
    message = str(refused.value)
    assert message.startswith(f"{path}: these sagas need ")
    assert f"over the {constants.MAX_RESOURCES_PER_STACK} one stack holds: their 80 participant commands" in message
