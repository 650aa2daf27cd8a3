"""The wiring audit: every runtime edge of the synthesized stack is allowed on every side that decides it.

moto enforces no IAM, resource or key policy, so the end-to-end tests cannot show that the deployed stack may do
what it does locally. tests/infra/wiring.py derives the edges from the template (alarm -> topic -> key, state
machine -> queue and table, rule and schedule -> target and dead-letter queue, event source mapping -> queue,
participant -> task callbacks, its table, its idempotency items and the saga records, function -> what its
environment names, API method -> function, admission -> each saga's state machine and command queues) and evaluates
the caller's identity policy, the target's resource policy and the key policy for each. Every kind of check is shown
to fail once the statements that allow it are gone.
"""

from __future__ import annotations

from collections import Counter

import pytest

from infra import constants
from saga_records.access import PARTICIPANT_ACTIONS, PARTICIPANT_ATTRIBUTES
from saga_testkit.kit import project_definitions
from tests.infra import wiring

pytestmark = pytest.mark.infra

USES = wiring.table_uses(
    constants.DOMAIN_TABLE_ACTIONS, constants.IDEMPOTENCY_ACTIONS, PARTICIPANT_ACTIONS, PARTICIPANT_ATTRIBUTES
)


@pytest.fixture(scope="module")
def audited(synthesized) -> list[wiring.Edge]:
    return wiring.audit(synthesized.template, USES)


def kinds(edges: list[wiring.Edge]) -> Counter[str]:
    return Counter(edge.kind for edge in edges)


def test_every_edge_is_allowed_on_every_side(audited):
    assert [failure for edge in audited for failure in edge.failures] == []


def test_the_audit_checks_every_edge_the_template_has(synthesized, audited):
    # The counts come from the template's own resources, so a new saga, step, alarm or API is audited too.
    template = wiring.Template(synthesized.template)
    alarms = template.of_type("AWS::CloudWatch::Alarm").values()
    mappings = template.of_type("AWS::Lambda::EventSourceMapping")
    participants = [
        f
        for f in template.of_type("AWS::Lambda::Function").values()
        if "SERVICE_TABLE_NAME" in f["Properties"]["Environment"]["Variables"]
    ]
    found = kinds(audited)
    assert found["alarm -> topic -> key"] == sum(
        len(a["Properties"]["AlarmActions"]) + len(a["Properties"]["OKActions"]) for a in alarms
    )
    assert found["event source mapping -> queue"] == len(mappings)
    # One state machine sends to each participant queue here (the tracker's queue is fed by the bus alone)
    tracker_mappings = [
        m
        for m in mappings.values()
        if "CHOREOGRAPHIES"
        in template.props(template.resolve(m["Properties"]["FunctionName"]))["Environment"]["Variables"]
    ]
    assert found["participant -> task callbacks"] == len(mappings) - len(tracker_mappings)
    for kind in ("participant -> its table", "participant -> its idempotency items", "participant -> saga records"):
        assert found[kind] == len(participants), kind
    assert found["state machine -> queue -> key"] == len(mappings) - len(
        tracker_mappings
    )  # one callback task per command
    assert found["state machine -> table"] >= 1
    rules = template.of_type("AWS::Events::Rule").values()
    targets = [t for r in rules for t in r["Properties"]["Targets"]]
    to_queues = [t for t in targets if template.logical_id_of(template.resolve(t["Arn"]), "AWS::SQS::Queue")]
    assert found["rule -> function"] + found["rule -> queue"] == len(targets)
    assert found["rule -> dead-letter queue"] == sum("DeadLetterConfig" in t for t in targets)
    # Choreography: each bus rule's command answers on the bus and retries on its own queue; the tracker, its schedules
    # and the API's starts of choreographed sagas
    bus_rules = [
        r
        for r in rules
        if "detail-type" in r["Properties"].get("EventPattern", {}) and "EventBusName" in r["Properties"]
    ]
    assert bus_rules, "the project ships a choreographed saga: its commands react through rules of the saga bus"
    assert found["participant -> saga bus"] == found["participant -> its own queue (retry)"] == len(bus_rules)
    assert len(to_queues) == len(bus_rules) + len(tracker_mappings)
    for kind in (
        "tracker -> saga bus",
        "tracker -> deadline schedules",
        "tracker -> scheduler role",
        "schedule -> saga bus",
    ):
        assert found[kind] == len(tracker_mappings) == 1, kind
    # The API and its reconciler, for each choreographed saga
    choreographed = [d for d in project_definitions() if d.pattern == "choreography"]
    assert found["function -> saga bus"] == 2 * len(choreographed)
    assert found["api -> function"] == len(template.of_type("AWS::ApiGateway::Method"))
    assert found["function -> topic"] >= 1  # the detector's incident notices
    # The API and its reconciler of unstarted sagas each start every saga, named in their SAGAS setting
    assert found["function -> state machine"] == 2 * len(template.of_type("AWS::StepFunctions::StateMachine"))
    # The API function admits starts: it reads every saga's state machine and the backlog of each command queue, and
    # it owns the start-rate buckets and the key of its page tokens
    assert found["admission -> state machine"] == len(template.of_type("AWS::StepFunctions::StateMachine"))
    # (a choreographed saga's queues are listed in a parameter of the stack instead: one per choreographed saga)
    assert found["admission -> command queues parameter"] == len(template.of_type("AWS::SSM::Parameter"))
    assert len(template.of_type("AWS::SSM::Parameter")) == len(choreographed)
    # (each participant queue: one state machine sends to each here; the tracker's queue is no participant's)
    assert found["admission -> command queue"] == len(mappings) - len(tracker_mappings)
    assert found["function -> admission table"] == 1
    assert found["function -> page token key"] == 1
    assert sum(found.values()) > 150


def test_the_sides_that_decide_each_edge_are_the_ones_checked(audited):
    # A service principal has no identity policy of ours: its target's policy decides; an encrypted target's key too.
    sides = {edge.kind: set(edge.results) for edge in audited}
    assert sides["alarm -> topic -> key"] == {"resource", "key"}
    assert sides["rule -> function"] == {"resource"}
    assert sides["api -> function"] == {"resource"}
    assert sides["function -> topic"] == {"identity", "resource", "key"}
    assert sides["event source mapping -> queue"] == {"identity", "resource"}
    assert sides["participant -> its idempotency items"] == {"identity"}
    assert sides["admission -> command queue"] == {"identity", "resource"}
    assert sides["function -> page token key"] == {"identity", "resource"}


# --- each kind of check can fail ----------------------------------------------------------------------------------

CHECKS = [
    ("alarm -> topic -> key", "resource"),
    ("alarm -> topic -> key", "key"),
    ("state machine -> queue -> key", "identity"),
    ("state machine -> table", "identity"),
    ("rule -> function", "resource"),
    ("rule -> dead-letter queue", "resource"),
    ("event source mapping -> queue", "identity"),
    ("participant -> task callbacks", "identity"),
    ("participant -> its table", "identity"),
    ("participant -> its idempotency items", "identity"),
    ("participant -> saga records", "identity"),
    ("function -> dead-letter queue", "identity"),
    ("function -> queue", "identity"),
    ("function -> topic", "identity"),
    ("function -> topic", "key"),
    ("function -> state machine", "identity"),
    ("api -> function", "resource"),
    ("admission -> state machine", "identity"),
    ("admission -> command queues parameter", "identity"),
    ("admission -> command queue", "identity"),
    ("function -> admission table", "identity"),
    ("function -> page token key", "identity"),
    ("function -> page token key", "resource"),
    ("rule -> queue", "resource"),
    ("participant -> saga bus", "identity"),
    ("participant -> its own queue (retry)", "identity"),
    ("tracker -> saga bus", "identity"),
    ("tracker -> deadline schedules", "identity"),
    ("tracker -> scheduler role", "identity"),
    ("schedule -> saga bus", "identity"),
    ("function -> saga bus", "identity"),
]


@pytest.mark.parametrize(("kind", "side"), CHECKS)
def test_a_check_fails_once_the_statements_that_allow_it_are_removed(synthesized, audited, kind, side):
    # Given an edge of this kind, allowed on this side by some statements of the template
    edge = next(edge for edge in audited if edge.kind == kind)
    allowing = edge.results[side].allowing
    assert allowing, f"{kind}: nothing allows the {side} side, so removing it would prove nothing"
    # When those statements are removed / Then the audit reports that edge on that side
    again = wiring.audit(wiring.without(synthesized.template, allowing), USES)
    assert f"{kind} {edge.source} -> {edge.target}: {side}" in [f for e in again for f in e.failures]


# --- least privilege a reviewer can check ---------------------------------------------------------------------------


def participant_edges(audited, kind: str) -> list[wiring.Edge]:
    found = [edge for edge in audited if edge.kind == kind]
    assert found
    return found


def identity_allows(template: wiring.Template, edge: wiring.Edge, request: wiring.Request) -> bool:
    context = {**wiring.TLS, **request.context}
    statements = wiring.identity_statements(template, edge.caller.role_id)
    return wiring.decide(statements, request.action, request.resource, context).allowed


def test_a_participant_reaches_no_other_services_idempotency_items(synthesized, audited):
    template = wiring.Template(synthesized.template)
    edges = participant_edges(audited, "participant -> its idempotency items")
    services = {edge.requests[0].context["dynamodb:LeadingKeys"][0].split(".")[0] for edge in edges}
    assert len(services) >= 2
    for edge in edges:
        own = edge.requests[0].context["dynamodb:LeadingKeys"][0].split(".")[0]
        for other in services - {own}:
            for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"):
                request = wiring.Request(
                    action, edge.requests[0].resource, {"dynamodb:LeadingKeys": [f"{other}.action#1"]}
                )
                assert not identity_allows(template, edge, request), (edge.source, other, action)
        # Nor a request naming no key at all (Scan reads every item)
        assert not identity_allows(template, edge, wiring.Request("dynamodb:Scan", edge.requests[0].resource))


def test_a_participant_writes_only_the_saga_record_attributes_it_is_granted(synthesized, audited):
    template = wiring.Template(synthesized.template)
    for edge in participant_edges(audited, "participant -> saga records"):
        resource = edge.requests[0].resource
        wider = {"dynamodb:Attributes": [*PARTICIPANT_ATTRIBUTES, "input"], "dynamodb:ReturnValues": "NONE"}
        assert not identity_allows(template, edge, wiring.Request("dynamodb:UpdateItem", resource, wider))
        whole = {"dynamodb:Attributes": list(PARTICIPANT_ATTRIBUTES), "dynamodb:ReturnValues": "ALL_NEW"}
        assert not identity_allows(template, edge, wiring.Request("dynamodb:UpdateItem", resource, whole))
        for action in ("dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Scan", "dynamodb:Query"):
            assert not identity_allows(template, edge, wiring.Request(action, resource)), action


def test_a_participant_calls_only_its_code_paths_item_actions_on_its_own_table_only(synthesized, audited):
    template = wiring.Template(synthesized.template)
    edges = participant_edges(audited, "participant -> its table")
    tables = {edge.target for edge in edges}
    for edge in edges:
        resource = template.arn(edge.target)
        for action in ("dynamodb:Scan", "dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:DescribeStream"):
            assert not identity_allows(template, edge, wiring.Request(action, resource)), (edge.source, action)
        for other in tables - {edge.target}:
            assert not identity_allows(template, edge, wiring.Request("dynamodb:GetItem", template.arn(other)))


ITEM_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
}


def test_no_item_only_grant_names_an_index(synthesized):
    template = wiring.Template(synthesized.template)
    for role_id in template.of_type("AWS::IAM::Role"):
        for statement in wiring.identity_statements(template, role_id):
            actions = set(wiring._as_list(statement.document["Action"]))
            if actions and actions <= ITEM_ACTIONS:
                resources = wiring._as_list(statement.document["Resource"])
                assert not [r for r in resources if "/index/" in r], (role_id, statement.document)


# --- the API's optional resource policy ------------------------------------------------------------------------------


def test_the_api_resource_policy_lets_the_named_callers_in_and_no_one_else(synthesized_with_options):
    template = wiring.Template(synthesized_with_options.template)
    ((api_id, api),) = template.of_type("AWS::ApiGateway::RestApi").items()
    policy = wiring.statements_at(
        template, ("Resources", api_id, "Properties", "Policy", "Statement"), api["Properties"]["Policy"]["Statement"]
    )
    method = f"arn:aws:execute-api:{wiring.REGION}:{wiring.ACCOUNT}:{api_id}/v1/POST/orders"

    def may_invoke(principal_arn: str, account: str) -> bool:
        def names_caller(document: dict) -> bool:
            principals = document.get("Principal")
            if principals in ("*", {"AWS": "*"}):
                return True
            return any(p in (principal_arn, f"arn:aws:iam::{account}:root") for p in wiring._as_list(principals["AWS"]))

        context = {**wiring.TLS, "aws:PrincipalArn": principal_arn, "aws:PrincipalAccount": account}
        return wiring.decide(policy, "execute-api:Invoke", method, context, names_caller).allowed

    assert may_invoke("arn:aws:iam::111122223333:role/shop-backend", "111122223333")
    assert may_invoke("arn:aws:iam::444455556666:role/anyone-there", "444455556666")
    assert not may_invoke("arn:aws:iam::111122223333:role/other-role", "111122223333")
    assert not may_invoke(f"arn:aws:iam::{wiring.ACCOUNT}:role/same-account", wiring.ACCOUNT)


# --- the evaluator itself -------------------------------------------------------------------------------------------


def test_an_unknown_condition_operator_is_an_error_not_a_match():
    with pytest.raises(ValueError, match="NumericLessThan"):
        wiring.condition_holds({"NumericLessThan": {"aws:EpochTime": "1"}}, {"aws:EpochTime": "0"})


LEADING = "dynamodb:LeadingKeys"
ALARMS = "arn:aws:cloudwatch:r:1:alarm:S/*"


@pytest.mark.parametrize(
    ("condition", "context", "holds"),
    [
        ({"ForAllValues:StringLike": {LEADING: ["Pay.*"]}}, {LEADING: ["Pay.a#1"]}, True),
        ({"ForAllValues:StringLike": {LEADING: ["Pay.*"]}}, {LEADING: ["Ship.a#1"]}, False),
        ({"ArnLike": {"aws:SourceArn": ALARMS}}, {"aws:SourceArn": "arn:aws:cloudwatch:r:1:alarm:S/x"}, True),
        ({"ArnLike": {"aws:SourceArn": ALARMS}}, {"aws:SourceArn": "arn:aws:cloudwatch:r:1:alarm:T/x"}, False),
        ({"ArnLike": {"aws:SourceArn": "arn:*"}}, {}, False),
        ({"StringNotEquals": {"aws:PrincipalAccount": ["1"]}}, {"aws:PrincipalAccount": "2"}, True),
        ({"StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE"]}}, {}, True),
        ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": "true"}, False),
    ],
)
def test_conditions_evaluate_as_iam_does(condition, context, holds):
    assert wiring.condition_holds(condition, context) is holds


def test_on_the_saga_bus_each_caller_puts_only_its_own_sources(synthesized, audited):
    # A participant, the tracker, the scheduler role and the API may put events on the bus only as the sagas (or the
    # deadlines) they serve: another saga's source, or a deadline under the saga's own source, is denied
    template = wiring.Template(synthesized.template)
    kinds_checked = set()
    for edge in audited:
        if not edge.kind.endswith("-> saga bus"):
            continue
        allowed = {request.context["events:source"] for request in edge.requests}
        for request in edge.requests:
            assert identity_allows(template, edge, request), edge.kind
            for foreign in ("sagas.SomeoneElse", f"{request.context['events:source']}.forged"):
                if foreign not in allowed:
                    forged = wiring.Request(request.action, request.resource, {"events:source": foreign})
                    assert not identity_allows(template, edge, forged), (edge.kind, edge.source, foreign)
        kinds_checked.add(edge.kind)
    assert kinds_checked == {
        "participant -> saga bus",
        "tracker -> saga bus",
        "schedule -> saga bus",
        "function -> saga bus",
    }
