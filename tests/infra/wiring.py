"""The wiring audit's engine: every runtime edge of the synthesized template, and whether IAM would let it through.

moto enforces no identity, resource or key policy, so nothing on the local runtime shows that a deployed stack can
do what it does there. This module reads the template as AWS would: it resolves references to ARNs (pseudo
parameters fixed to one account and region), derives each runtime edge from the resources themselves (not from a
list kept by hand), and evaluates the policies that decide it:

- identity: the caller role's policies (AWS::IAM::Policy, inline role policies) must allow the action;
- resource: where the target has a policy (topic, queue, Lambda permissions, key, API), it must allow the caller
  (a service principal needs it; a role of the account is let in by its identity policy unless a Deny says no);
- key: where the target is encrypted with a customer key, the key policy must allow the caller (directly, or by
  delegating to the account's IAM policies, which then must allow it too).

Allow needs a matching Allow and no matching Deny. Conditions are evaluated against the request context of the
edge (TLS, source account and ARN, principal ARN, DynamoDB leading keys and attributes); a condition operator this
module does not know is an error, never a silent match.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
STACK = "SagaStack"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": STACK,
}
TLS = {"aws:SecureTransport": "true"}

# Where a template keeps a policy: (path of the statement list from the template root) for each statement.
Location = tuple[Any, ...]


# --- references -------------------------------------------------------------------------------------------------


class Template:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.resources: dict[str, dict[str, Any]] = document["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {key: value for key, value in self.resources.items() if value["Type"] == resource_type}

    def type_of(self, logical_id: str) -> str:
        return self.resources[logical_id]["Type"]

    def props(self, logical_id: str) -> dict[str, Any]:
        return self.resources[logical_id].get("Properties", {})

    # ARNs and names, consistent between Ref and GetAtt, so that a string identifies one resource.
    def arn(self, logical_id: str) -> str:
        kind = self.type_of(logical_id)
        prefix = f"arn:{PARTITION}"
        if kind == "AWS::SSM::Parameter":  # its name, less the leading slash of a path
            return f"{prefix}:ssm:{REGION}:{ACCOUNT}:parameter/{self.ref(logical_id).lstrip('/')}"
        return {
            "AWS::SQS::Queue": f"{prefix}:sqs:{REGION}:{ACCOUNT}:{logical_id}",
            "AWS::DynamoDB::Table": f"{prefix}:dynamodb:{REGION}:{ACCOUNT}:table/{logical_id}",
            "AWS::Lambda::Function": f"{prefix}:lambda:{REGION}:{ACCOUNT}:function:{logical_id}",
            "AWS::KMS::Key": f"{prefix}:kms:{REGION}:{ACCOUNT}:key/{logical_id}",
            "AWS::IAM::Role": f"{prefix}:iam::{ACCOUNT}:role/{logical_id}",
            "AWS::SNS::Topic": f"{prefix}:sns:{REGION}:{ACCOUNT}:{logical_id}",
            "AWS::StepFunctions::StateMachine": f"{prefix}:states:{REGION}:{ACCOUNT}:stateMachine:{logical_id}",
            "AWS::Logs::LogGroup": f"{prefix}:logs:{REGION}:{ACCOUNT}:log-group:{logical_id}:*",
            "AWS::Events::Rule": f"{prefix}:events:{REGION}:{ACCOUNT}:rule/{logical_id}",
            "AWS::Events::EventBus": f"{prefix}:events:{REGION}:{ACCOUNT}:event-bus/{logical_id}",
            "AWS::CloudWatch::Alarm": f"{prefix}:cloudwatch:{REGION}:{ACCOUNT}:alarm:{self.alarm_name(logical_id)}",
        }.get(kind, f"{prefix}:{kind}:{logical_id}")

    def alarm_name(self, logical_id: str) -> str:
        return self.resolve(self.props(logical_id).get("AlarmName", logical_id))

    def ref(self, logical_id: str) -> str:
        if logical_id in PSEUDO:
            return PSEUDO[logical_id]
        if logical_id not in self.resources:  # a template parameter
            return f"parameter:{logical_id}"
        kind = self.type_of(logical_id)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{logical_id}"
        if kind in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine"):
            return self.arn(logical_id)
        if kind == "AWS::ApiGateway::Stage":
            return self.props(logical_id)["StageName"]
        if kind == "AWS::SSM::Parameter" and "Name" in self.props(logical_id):
            return str(self.resolve(self.props(logical_id)["Name"]))
        return logical_id  # names and ids: the logical id stands in for them

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute in ("QueueName", "TopicName", "Name"):
            return logical_id
        if attribute == "RootResourceId":
            return f"{logical_id}.root"
        return f"{logical_id}.{attribute}"

    def resolve(self, value: Any) -> Any:
        """A property with every intrinsic function resolved (strings for references)."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (function, argument), *_ = value.items()
            if function == "Ref":
                return self.ref(argument)
            if function == "Fn::GetAtt":
                return self.get_att(*argument)
            if function == "Fn::Join":
                separator, parts = argument
                return separator.join(str(self.resolve(part)) for part in parts)
            if function == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(index)]
            if function == "Fn::Split":
                separator, text = argument
                return str(self.resolve(text)).split(separator)
            if function == "Fn::Sub":
                text = argument if isinstance(argument, str) else argument[0]
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1)), text)
        return {key: self.resolve(item) for key, item in value.items()}

    def _sub(self, name: str) -> str:
        if "." in name:
            return self.get_att(*name.split(".", 1))
        return self.ref(name)

    def logical_id_of(self, reference: str, resource_type: str) -> str | None:
        """The resource of `resource_type` a resolved ARN, URL or name points at."""
        for logical_id in self.of_type(resource_type):
            if reference in (self.arn(logical_id), self.ref(logical_id)):
                return logical_id
        return None


# --- policies ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    location: Location  # where it sits in the template (for the tests that delete it)
    document: dict[str, Any]  # resolved


def statements_at(template: Template, path: Location, statements: list[Any]) -> list[Statement]:
    return [
        Statement((*path, index), template.resolve(statement))
        for index, statement in enumerate(statements if isinstance(statements, list) else [statements])
    ]


def identity_statements(template: Template, role_id: str) -> list[Statement]:
    found = []
    for policy_id, policy in template.of_type("AWS::IAM::Policy").items():
        if {"Ref": role_id} in policy["Properties"].get("Roles", []):
            document = policy["Properties"]["PolicyDocument"]
            found += statements_at(
                template, ("Resources", policy_id, "Properties", "PolicyDocument", "Statement"), document["Statement"]
            )
    for index, policy in enumerate(template.props(role_id).get("Policies", [])):
        path = ("Resources", role_id, "Properties", "Policies", index, "PolicyDocument", "Statement")
        found += statements_at(template, path, policy["PolicyDocument"]["Statement"])
    return found


def resource_statements(template: Template, target_id: str) -> list[Statement] | None:
    """The target's own policy; None when the target type has none (DynamoDB tables here, state machines), or the
    target is no resource of the stack (the deadline schedules the tracker creates at run time)."""
    if target_id not in template.resources:
        return None
    kind = template.type_of(target_id)
    if kind == "AWS::SNS::Topic":
        return _attached(template, "AWS::SNS::TopicPolicy", "Topics", target_id)
    if kind == "AWS::SQS::Queue":
        return _attached(template, "AWS::SQS::QueuePolicy", "Queues", target_id)
    if kind == "AWS::KMS::Key":
        return statements_at(
            template,
            ("Resources", target_id, "Properties", "KeyPolicy", "Statement"),
            template.props(target_id)["KeyPolicy"]["Statement"],
        )
    if kind == "AWS::Lambda::Function":
        return [
            Statement(("Resources", permission_id), _permission_statement(template, permission))
            for permission_id, permission in template.of_type("AWS::Lambda::Permission").items()
            if template.logical_id_of(template.resolve(permission["Properties"]["FunctionName"]), kind) == target_id
        ]
    return None


def _attached(template: Template, policy_type: str, key: str, target_id: str) -> list[Statement]:
    found = []
    for policy_id, policy in template.of_type(policy_type).items():
        if {"Ref": target_id} in policy["Properties"][key]:
            path = ("Resources", policy_id, "Properties", "PolicyDocument", "Statement")
            found += statements_at(template, path, policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def _permission_statement(template: Template, permission: dict[str, Any]) -> dict[str, Any]:
    properties = template.resolve(permission["Properties"])
    principal = properties["Principal"]
    condition: dict[str, Any] = {}
    if "SourceArn" in properties:
        condition["ArnLike"] = {"aws:SourceArn": properties["SourceArn"]}
    if "SourceAccount" in properties:
        condition["StringEquals"] = {"aws:SourceAccount": properties["SourceAccount"]}
    return {
        "Effect": "Allow",
        "Principal": {"Service": principal} if principal.endswith(".amazonaws.com") else {"AWS": principal},
        "Action": properties["Action"],
        "Resource": template.arn(template.logical_id_of(properties["FunctionName"], "AWS::Lambda::Function")),
        "Condition": condition,
    }


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


@dataclass(frozen=True)
class Caller:
    """Who makes a request: a role of the stack, or an AWS service principal on its behalf."""

    role_id: str | None = None
    service: str | None = None

    def principal_arns(self, template: Template) -> list[str]:
        return [template.arn(self.role_id)] if self.role_id else []


def principal_matches(statement: dict[str, Any], caller: Caller, template: Template) -> bool:
    principal = statement.get("Principal")
    if principal in ("*", {"AWS": "*"}):
        return True
    if not isinstance(principal, dict):
        return False
    if caller.service:
        return caller.service in _as_list(principal.get("Service", []))
    return any(arn in _as_list(principal.get("AWS", [])) for arn in caller.principal_arns(template))


def delegates_to_account(statement: dict[str, Any]) -> bool:
    """A key-policy statement that hands the decision to the account's IAM policies (principal: the account root)."""
    principal = statement.get("Principal")
    return isinstance(principal, dict) and f"arn:{PARTITION}:iam::{ACCOUNT}:root" in _as_list(principal.get("AWS", []))


def condition_holds(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    lowered = {key.lower(): value for key, value in context.items()}
    for operator, tests in condition.items():
        for key, expected in tests.items():
            if not _operator_holds(operator, lowered.get(key.lower()), [str(item) for item in _as_list(expected)]):
                return False
    return True


def _operator_holds(operator: str, actual: Any, expected: list[str]) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    compare = {
        "StringEquals": lambda a, e: a == e,
        "StringLike": lambda a, e: _glob(e, a),
        "ArnEquals": lambda a, e: a == e,
        "ArnLike": lambda a, e: _glob(e, a),
        "Bool": lambda a, e: a.lower() == e.lower(),
    }
    negated = {
        "StringNotEquals": "StringEquals",
        "StringNotLike": "StringLike",
        "ArnNotEquals": "ArnEquals",
        "ArnNotLike": "ArnLike",
    }
    positive = negated.get(base, base)
    if positive not in compare:
        raise ValueError(f"condition operator {operator} is not evaluated by this audit")
    match = compare[positive]
    if actual is None:
        # A key absent from the request: positive operators fail (IfExists passes), negated ones hold.
        return if_exists or base in negated or qualifier == "ForAllValues"
    values = [str(item) for item in _as_list(actual)]
    if qualifier == "ForAllValues":
        found = all(any(match(value, e) for e in expected) for value in values)
    elif qualifier == "ForAnyValue":
        found = any(any(match(value, e) for e in expected) for value in values)
    else:
        found = any(match(values[0], e) for e in expected)
    return not found if base in negated else found


def statement_applies(statement: dict[str, Any], action: str, resource: str, context: dict[str, Any]) -> bool:
    actions = _as_list(statement.get("Action", []))
    if not any(_glob(pattern, action, case=False) for pattern in actions):
        return False
    resources = [_api_resource(item) for item in _as_list(statement.get("Resource", "*"))]
    if not any(_glob(pattern, resource) for pattern in resources):
        return False
    return condition_holds(statement.get("Condition", {}), context)


def _api_resource(pattern: str) -> str:
    """API Gateway's shorthand in a resource policy: "execute-api:/*" is every method of this API."""
    if pattern.startswith("execute-api:/"):
        return f"arn:{PARTITION}:execute-api:{REGION}:{ACCOUNT}:*/" + pattern.removeprefix("execute-api:/")
    return pattern


@dataclass
class Decision:
    allowed: bool
    allowing: list[Location] = field(default_factory=list)


def decide(
    statements: list[Statement],
    action: str,
    resource: str,
    context: dict[str, Any],
    principal: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> Decision:
    """Allowed when an applicable Allow for this principal exists and no applicable Deny for it does (identity
    statements name no principal: they are the caller's own)."""
    allowing = []
    for statement in statements:
        document = statement.document
        if not statement_applies(document, action, resource, context) or not principal(document):
            continue
        if document["Effect"] == "Deny":
            return Decision(False)
        allowing.append(statement.location)
    return Decision(bool(allowing), allowing)


# --- edges ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    action: str
    resource: str  # ARN
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class Edge:
    kind: str  # e.g. "alarm -> topic"
    source: str  # logical id
    target: str  # logical id
    caller: Caller
    requests: list[Request]
    key_id: str | None = None  # the target's customer-managed key, when it has one
    # Filled by check(): side ("identity" | "resource" | "key") -> allowed, and the statements that allowed it.
    results: dict[str, Decision] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        return [
            f"{self.kind} {self.source} -> {self.target}: {side}" for side, d in self.results.items() if not d.allowed
        ]


def check(template: Template, edge: Edge) -> Edge:
    for request in edge.requests:
        context = {**TLS, **request.context}
        if edge.caller.role_id:
            context |= {"aws:PrincipalArn": template.arn(edge.caller.role_id), "aws:PrincipalAccount": ACCOUNT}
            _merge(
                edge,
                "identity",
                decide(identity_statements(template, edge.caller.role_id), request.action, request.resource, context),
            )
        own_policy = resource_statements(template, edge.target)
        if own_policy is not None:
            decision = decide(
                own_policy,
                request.action,
                request.resource,
                context,
                lambda document: principal_matches(document, edge.caller, template),
            )
            if edge.caller.role_id and not decision.allowed and template.type_of(edge.target) == "AWS::KMS::Key":
                # A key policy must allow a role of the account itself, or hand the decision to the account's IAM.
                decision = decide(own_policy, request.action, request.resource, context, delegates_to_account)
            elif edge.caller.role_id and not decision.allowed and not _denied(own_policy, request, context):
                # A role of the account needs no Allow in the target's policy, only no Deny there.
                decision = Decision(True)
            _merge(edge, "resource", decision)
    if edge.key_id:
        _check_key(template, edge)
    return edge


def _denied(statements: list[Statement], request: Request, context: dict[str, Any]) -> bool:
    """A Deny that applies whoever asks (the TLS-only statements name every principal)."""
    return any(
        s.document["Effect"] == "Deny"
        and s.document.get("Principal") in ("*", {"AWS": "*"})
        and statement_applies(s.document, request.action, request.resource, context)
        for s in statements
    )


def _check_key(template: Template, edge: Edge) -> None:
    key_arn = template.arn(edge.key_id)
    key_policy = resource_statements(template, edge.key_id) or []
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        context = {**TLS, **edge.requests[0].context}
        direct = decide(
            key_policy,
            action,
            key_arn,
            context,
            lambda d: principal_matches(d, edge.caller, template) and not delegates_to_account(d),
        )
        if not direct.allowed and edge.caller.role_id:
            delegated = decide(key_policy, action, key_arn, context, delegates_to_account)
            identity = decide(identity_statements(template, edge.caller.role_id), action, key_arn, context)
            direct = Decision(delegated.allowed and identity.allowed, identity.allowing if delegated.allowed else [])
        _merge(edge, "key", direct)


def _merge(edge: Edge, side: str, decision: Decision) -> None:
    known = edge.results.get(side)
    if known is None:
        edge.results[side] = decision
    else:
        edge.results[side] = Decision(known.allowed and decision.allowed, known.allowing + decision.allowing)


def edges(template: Template, uses: dict[str, TableUse]) -> list[Edge]:
    """Every runtime edge of the architecture, derived from the template's resources; `uses` says what a
    participant must be able to do with each table its environment names."""
    return [
        *_alarm_edges(template),
        *_state_machine_edges(template),
        *_event_rule_edges(template),
        *_event_source_mapping_edges(template),
        *_function_dead_letter_edges(template),
        *_function_environment_edges(template, uses),
        *_api_edges(template),
        *_admission_edges(template),
        *_choreography_edges(template),
    ]


def _role_of_function(template: Template, function_id: str) -> str:
    return template.props(function_id)["Role"]["Fn::GetAtt"][0]


def _topic_key(template: Template, topic_id: str) -> str | None:
    key = template.props(topic_id).get("KmsMasterKeyId")
    return key["Fn::GetAtt"][0] if isinstance(key, dict) and "Fn::GetAtt" in key else None


def _queue_key(template: Template, queue_id: str) -> str | None:
    key = template.props(queue_id).get("KmsMasterKeyId")
    return key["Fn::GetAtt"][0] if isinstance(key, dict) and "Fn::GetAtt" in key else None


def _alarm_edges(template: Template) -> Iterator[Edge]:
    for alarm_id, alarm in template.of_type("AWS::CloudWatch::Alarm").items():
        for reference in alarm["Properties"].get("AlarmActions", []) + alarm["Properties"].get("OKActions", []):
            topic_id = template.logical_id_of(template.resolve(reference), "AWS::SNS::Topic")
            assert topic_id, f"{alarm_id} notifies something that is not a topic of the stack: {reference}"
            context = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": template.arn(alarm_id)}
            yield Edge(
                "alarm -> topic -> key",
                alarm_id,
                topic_id,
                Caller(service="cloudwatch.amazonaws.com"),
                [Request("sns:Publish", template.arn(topic_id), context)],
                key_id=_topic_key(template, topic_id),
            )


def _state_machine_edges(template: Template) -> Iterator[Edge]:
    for machine_id, machine in template.of_type("AWS::StepFunctions::StateMachine").items():
        properties = machine["Properties"]
        role_id = properties["RoleArn"]["Fn::GetAtt"][0]
        substitutions = {key: template.resolve(value) for key, value in properties["DefinitionSubstitutions"].items()}
        text = re.sub(r"\$\{(\w+)\}", lambda m, known=substitutions: known[m.group(1)], properties["DefinitionString"])
        for state in json.loads(text)["States"].values():
            resource = state.get("Resource", "")
            if resource.startswith("arn:aws:states:::sqs:sendMessage"):
                queue_id = template.logical_id_of(state["Parameters"]["QueueUrl"], "AWS::SQS::Queue")
                yield Edge(
                    "state machine -> queue -> key",
                    machine_id,
                    queue_id,
                    Caller(role_id=role_id),
                    [Request("sqs:SendMessage", template.arn(queue_id))],
                    key_id=_queue_key(template, queue_id),
                )
            elif resource.startswith("arn:aws:states:::dynamodb:"):
                table_id = template.logical_id_of(state["Parameters"]["TableName"], "AWS::DynamoDB::Table")
                action = "dynamodb:" + resource.rsplit(":", 1)[1][0].upper() + resource.rsplit(":", 1)[1][1:]
                yield Edge(
                    "state machine -> table",
                    machine_id,
                    table_id,
                    Caller(role_id=role_id),
                    [Request(action, template.arn(table_id))],
                )


def _event_rule_edges(template: Template) -> Iterator[Edge]:
    for rule_id, rule in template.of_type("AWS::Events::Rule").items():
        context = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": template.arn(rule_id)}
        events = Caller(service="events.amazonaws.com")
        for target in rule["Properties"]["Targets"]:
            arn = template.resolve(target["Arn"])
            function_id = template.logical_id_of(arn, "AWS::Lambda::Function")
            queue_id = template.logical_id_of(arn, "AWS::SQS::Queue")
            if function_id:
                yield Edge(
                    "rule -> function", rule_id, function_id, events, [Request("lambda:InvokeFunction", arn, context)]
                )
            elif queue_id:
                yield Edge("rule -> queue", rule_id, queue_id, events, [Request("sqs:SendMessage", arn, context)])
            else:
                raise AssertionError(f"{rule_id} targets {arn}, which this audit cannot check")
            if "DeadLetterConfig" in target:
                dead_letter = template.resolve(target["DeadLetterConfig"]["Arn"])
                dlq_id = template.logical_id_of(dead_letter, "AWS::SQS::Queue")
                yield Edge(
                    "rule -> dead-letter queue",
                    rule_id,
                    dlq_id,
                    events,
                    [Request("sqs:SendMessage", dead_letter, context)],
                )


def _event_source_mapping_edges(template: Template) -> Iterator[Edge]:
    for mapping_id, mapping in template.of_type("AWS::Lambda::EventSourceMapping").items():
        properties = mapping["Properties"]
        function_id = template.logical_id_of(template.resolve(properties["FunctionName"]), "AWS::Lambda::Function")
        queue_arn = template.resolve(properties["EventSourceArn"])
        queue_id = template.logical_id_of(queue_arn, "AWS::SQS::Queue")
        yield Edge(
            "event source mapping -> queue",
            mapping_id,
            queue_id,
            Caller(role_id=_role_of_function(template, function_id)),
            [
                Request(action, queue_arn)
                for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
            ],
            key_id=_queue_key(template, queue_id),
        )
        yield from _task_callback_edges(template, function_id, queue_id)


def _task_callback_edges(template: Template, function_id: str, queue_id: str) -> Iterator[Edge]:
    """A participant answers the tasks of every state machine that sends commands to its queue."""
    for machine in _state_machine_edges(template):
        if machine.kind.startswith("state machine -> queue") and machine.target == queue_id:
            yield Edge(
                "participant -> task callbacks",
                function_id,
                machine.source,
                Caller(role_id=_role_of_function(template, function_id)),
                [
                    Request(f"states:{action}", template.arn(machine.source))
                    for action in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat")
                ],
            )


def _function_dead_letter_edges(template: Template) -> Iterator[Edge]:
    for function_id, function in template.of_type("AWS::Lambda::Function").items():
        if "DeadLetterConfig" in function["Properties"]:
            arn = template.resolve(function["Properties"]["DeadLetterConfig"]["TargetArn"])
            yield Edge(
                "function -> dead-letter queue",
                function_id,
                template.logical_id_of(arn, "AWS::SQS::Queue"),
                Caller(role_id=_role_of_function(template, function_id)),
                [Request("sqs:SendMessage", arn)],
            )


# What a function does with a resource its environment names, by the resource's type (tables: by variable below).
ENVIRONMENT_USE = {
    "AWS::SQS::Queue": ("queue", ["sqs:SendMessage"]),
    "AWS::SNS::Topic": ("topic", ["sns:Publish"]),
    "AWS::StepFunctions::StateMachine": ("state machine", ["states:StartExecution"]),
}


# What a function does with a resource its environment names, by the variable (where the type does not say it).
VARIABLE_USE = {
    "ADMISSION_TABLE_NAME": ("AWS::DynamoDB::Table", "function -> admission table", ["dynamodb:UpdateItem"]),
    "PAGE_TOKEN_KEY_ID": ("AWS::KMS::Key", "function -> page token key", ["kms:GenerateMac", "kms:VerifyMac"]),
}


@dataclass(frozen=True)
class TableUse:
    """How a function uses a table its environment names: the requests it must be allowed."""

    kind: str
    requests: Callable[[Template, str, dict[str, Any]], list[Request]]


def table_uses(
    domain_actions: tuple[str, ...],
    idempotency_actions: tuple[str, ...],
    saga_actions: tuple[str, ...],
    saga_attributes: tuple[str, ...],
) -> dict[str, TableUse]:
    """Environment variable -> what a participant must be able to do with that table (the other functions' saga
    table use is checked for at least one item action)."""

    def domain(template: Template, table_id: str, env: dict[str, Any]) -> list[Request]:
        return [Request(action, template.arn(table_id)) for action in domain_actions]

    def idempotency(template: Template, table_id: str, env: dict[str, Any]) -> list[Request]:
        own_key = {"dynamodb:LeadingKeys": [f"{env['POWERTOOLS_SERVICE_NAME']}.action#0f1e2d"]}
        return [Request(action, template.arn(table_id), own_key) for action in idempotency_actions]

    def saga_records(template: Template, table_id: str, env: dict[str, Any]) -> list[Request]:
        context = {"dynamodb:Attributes": list(saga_attributes), "dynamodb:ReturnValues": "NONE"}
        return [Request(action, template.arn(table_id), context) for action in saga_actions]

    return {
        "SERVICE_TABLE_NAME": TableUse("participant -> its table", domain),
        "IDEMPOTENCY_TABLE_NAME": TableUse("participant -> its idempotency items", idempotency),
        "SAGA_TABLE_NAME": TableUse("participant -> saga records", saga_records),
    }


def _function_environment_edges(template: Template, uses: dict[str, TableUse]) -> Iterator[Edge]:
    for function_id, function in template.of_type("AWS::Lambda::Function").items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        resolved = {name: template.resolve(value) for name, value in variables.items()}
        caller = Caller(role_id=_role_of_function(template, function_id))
        participant = "SERVICE_TABLE_NAME" in variables
        for name, value in variables.items():
            if not isinstance(value, dict):
                continue
            reference = template.resolve(value)
            for resource_type, (noun, actions) in ENVIRONMENT_USE.items():
                for target in _named_in(template, reference, resource_type):
                    key = _topic_key(template, target) if resource_type == "AWS::SNS::Topic" else None
                    yield Edge(
                        f"function -> {noun}",
                        function_id,
                        target,
                        caller,
                        [Request(action, template.arn(target)) for action in actions],
                        key_id=key,
                    )
            if name in VARIABLE_USE:
                resource_type, kind, actions = VARIABLE_USE[name]
                target = template.logical_id_of(reference, resource_type)
                assert target, f"{function_id}: {name} names no {resource_type} of the stack"
                yield Edge(kind, function_id, target, caller, [Request(a, template.arn(target)) for a in actions])
            table_id = template.logical_id_of(reference, "AWS::DynamoDB::Table")
            if table_id and participant and name in uses:
                use = uses[name]
                yield Edge(use.kind, function_id, table_id, caller, use.requests(template, table_id, resolved))


# A deadline schedule's name, as the tracker makes them (saga_tracker.deadlines.schedule_name): its prefix and a hash.
DEADLINE_SCHEDULE_NAME = "SagaDeadline-0f1e2d3c4b5a"


def _choreography_edges(template: Template) -> Iterator[Edge]:
    """The saga bus's edges: each participant that a bus rule feeds puts its answers on the bus under the rule's saga
    source and sends its retries to its own queue; the tracker puts timed-out steps on the bus, creates deadline
    schedules and passes the scheduler role, which puts the deadlines on the bus; the API starts choreographed sagas
    on the bus. Whom each may put events as (`events:source`) is part of every request."""
    consumers = {
        template.logical_id_of(template.resolve(m["Properties"]["EventSourceArn"]), "AWS::SQS::Queue"): (
            template.logical_id_of(template.resolve(m["Properties"]["FunctionName"]), "AWS::Lambda::Function")
        )
        for m in template.of_type("AWS::Lambda::EventSourceMapping").values()
    }
    for rule in template.of_type("AWS::Events::Rule").values():
        properties = rule["Properties"]
        bus_id = template.logical_id_of(template.resolve(properties.get("EventBusName", "")), "AWS::Events::EventBus")
        if bus_id is None or "detail-type" not in properties["EventPattern"]:
            continue  # not a rule of the saga bus, or the tracker's (every event of the sagas, to its own queue)
        for target in properties["Targets"]:
            queue_id = template.logical_id_of(template.resolve(target["Arn"]), "AWS::SQS::Queue")
            function_id = consumers[queue_id]
            caller = Caller(role_id=_role_of_function(template, function_id))
            yield Edge(
                "participant -> saga bus",
                function_id,
                bus_id,
                caller,
                [_put_events(template, bus_id, source) for source in properties["EventPattern"]["source"]],
            )
            yield Edge(
                "participant -> its own queue (retry)",
                function_id,
                queue_id,
                caller,
                [Request("sqs:SendMessage", template.arn(queue_id))],
            )
    for function_id, function in template.of_type("AWS::Lambda::Function").items():
        variables = {
            name: template.resolve(value)
            for name, value in function["Properties"].get("Environment", {}).get("Variables", {}).items()
        }
        caller = Caller(role_id=_role_of_function(template, function_id))
        if "CHOREOGRAPHIES" in variables:
            bus_id = template.logical_id_of(variables["SAGA_BUS_ARN"], "AWS::Events::EventBus")
            role_id = template.logical_id_of(variables["SCHEDULER_ROLE_ARN"], "AWS::IAM::Role")
            sagas = [saga["saga_type"] for saga in json.loads(variables["CHOREOGRAPHIES"])]
            yield Edge(
                "tracker -> saga bus",
                function_id,
                bus_id,
                caller,
                [_put_events(template, bus_id, f"sagas.{saga}") for saga in sagas],
            )
            schedule = (
                f"arn:{PARTITION}:scheduler:{REGION}:{ACCOUNT}:schedule/{variables['SCHEDULE_GROUP']}/"
                f"{DEADLINE_SCHEDULE_NAME}"
            )
            yield Edge(
                "tracker -> deadline schedules",
                function_id,
                "scheduler",
                caller,
                [Request("scheduler:CreateSchedule", schedule)],
            )
            yield Edge(
                "tracker -> scheduler role",
                function_id,
                role_id,
                caller,
                [Request("iam:PassRole", template.arn(role_id))],
            )
            yield Edge(
                "schedule -> saga bus",
                role_id,
                bus_id,
                Caller(role_id=role_id),
                [_put_events(template, bus_id, f"sagas.{saga}.deadlines") for saga in sagas],
            )
        if isinstance(variables.get("SAGAS"), str):
            for saga in json.loads(variables["SAGAS"]):
                if saga.get("bus_name"):
                    bus_id = template.logical_id_of(saga["bus_name"], "AWS::Events::EventBus")
                    yield Edge(
                        "function -> saga bus",
                        function_id,
                        bus_id,
                        caller,
                        [_put_events(template, bus_id, f"sagas.{saga['saga_type']}")],
                    )


def _put_events(template: Template, bus_id: str | None, source: str) -> Request:
    assert bus_id is not None, f"events put on a bus the stack does not define (source {source})"
    return Request("events:PutEvents", template.arn(bus_id), {"events:source": source})


def _named_in(template: Template, value: str, resource_type: str) -> list[str]:
    """The resources of `resource_type` an environment value names: the value itself, or a string of a JSON document
    it holds (the API's SAGAS setting lists every saga's state machine)."""
    exact = template.logical_id_of(value, resource_type)
    if exact:
        return [exact]
    return [
        logical_id
        for logical_id in template.of_type(resource_type)
        if any(f'"{name}"' in value for name in (template.arn(logical_id), template.ref(logical_id)))
    ]


def _api_edges(template: Template) -> Iterator[Edge]:
    resources = template.of_type("AWS::ApiGateway::Resource")

    def path_of(resource_reference: Any) -> str:
        resolved = template.resolve(resource_reference)
        if resolved.endswith(".root"):
            return ""
        properties = resources[resolved]["Properties"]
        return f"{path_of(properties['ParentId'])}/{properties['PathPart']}"

    (stage,) = template.of_type("AWS::ApiGateway::Stage").values()
    stage_name = stage["Properties"]["StageName"]
    for method_id, method in template.of_type("AWS::ApiGateway::Method").items():
        properties = method["Properties"]
        integration = properties.get("Integration", {})
        if integration.get("Type") != "AWS_PROXY":
            continue
        uri = template.resolve(integration["Uri"])
        function_id = next(f for f in template.of_type("AWS::Lambda::Function") if template.arn(f) in uri)
        api_id = template.resolve(properties["RestApiId"])
        path = path_of(properties["ResourceId"])
        source = (
            f"arn:{PARTITION}:execute-api:{REGION}:{ACCOUNT}:{api_id}/{stage_name}/{properties['HttpMethod']}{path}"
        )
        yield Edge(
            "api -> function",
            method_id,
            function_id,
            Caller(service="apigateway.amazonaws.com"),
            [
                Request(
                    "lambda:InvokeFunction",
                    template.arn(function_id),
                    {"aws:SourceArn": source, "aws:SourceAccount": ACCOUNT},
                )
            ],
        )


def _admission_edges(template: Template) -> Iterator[Edge]:
    """A function that admits starts (it names an admission table) reads, for each saga in its SAGAS setting, the
    state machine's definition (or a choreographed saga's command queues parameter) and the backlog of every queue
    that state machine sends commands to (or that parameter lists)."""
    commands = [edge for edge in _state_machine_edges(template) if edge.kind.startswith("state machine -> queue")]
    for function_id, function in template.of_type("AWS::Lambda::Function").items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        if "ADMISSION_TABLE_NAME" not in variables:
            continue
        caller = Caller(role_id=_role_of_function(template, function_id))
        sagas = template.resolve(variables["SAGAS"])
        queues: dict[str, None] = {}  # each queue once, whichever sagas' commands it carries
        for machine_id in _named_in(template, sagas, "AWS::StepFunctions::StateMachine"):
            arn = template.arn(machine_id)
            yield Edge(
                "admission -> state machine",
                function_id,
                machine_id,
                caller,
                [Request("states:DescribeStateMachine", arn)],
            )
            queues.update(dict.fromkeys(edge.target for edge in commands if edge.source == machine_id))
        for parameter_id in _named_in(template, sagas, "AWS::SSM::Parameter"):
            yield Edge(
                "admission -> command queues parameter",
                function_id,
                parameter_id,
                caller,
                [Request("ssm:GetParameter", template.arn(parameter_id))],
            )
            for url in json.loads(template.resolve(template.props(parameter_id)["Value"])):
                queue_id = template.logical_id_of(url, "AWS::SQS::Queue")
                assert queue_id, f"{parameter_id} lists {url}, no queue of the stack"
                queues[queue_id] = None
        for queue_id in queues:
            yield Edge(
                "admission -> command queue",
                function_id,
                queue_id,
                caller,
                [Request("sqs:GetQueueAttributes", template.arn(queue_id))],
            )


def audit(document: dict[str, Any], uses: dict[str, TableUse]) -> list[Edge]:
    template = Template(document)
    return [check(template, edge) for edge in edges(template, uses)]


def without(document: dict[str, Any], locations: list[Location]) -> dict[str, Any]:
    """A copy of the template with the statements (or whole resources) at `locations` removed."""
    copied = copy.deepcopy(document)
    locations = list(dict.fromkeys(locations))
    # Last first, so that removing a statement does not move the index of another still to remove.
    order = [
        [(isinstance(part, int), part if isinstance(part, int) else 0, str(part)) for part in loc] for loc in locations
    ]
    for _, location in sorted(zip(order, locations, strict=True), reverse=True):
        *parent_path, last = location
        parent: Any = copied
        for part in parent_path:
            parent = parent[part]
        if isinstance(parent, list):
            parent.pop(last)
        else:
            del parent[last]
    return copied
