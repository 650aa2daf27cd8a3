"""Workarounds for the moto CloudFormation defects on the path the CDK CLI takes (`cdk bootstrap/deploy`).

Same rules as moto_workarounds.py: pinned to moto 5.2.5, each small and named after its defect, each with a
test in tests/unit/test_cfn_server_workarounds.py that shows the defect without it and the fix with it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlparse

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing as cfn_parsing
from moto.cloudformation import responses as cfn_responses
from moto.cloudformation import utils as cfn_utils
from moto.cloudformation.exceptions import CloudFormationError, ValidationError

from local_runtime.moto_workarounds import patched


# --- Defect: a TemplateURL is read path-style (http://host:port/bucket/key) only when it contains
# "localhost"; for http://127.0.0.1:PORT/bucket/key, the URL the CDK CLI sends when AWS_ENDPOINT_URL
# names an IP, moto takes "http://127" for the bucket and answers "The specified bucket does not exist".
def _path_style_for_ip_hosts(read: Any) -> Any:
    def read_template(template_url: str, *args: Any, **kwargs: Any) -> str:
        parts = urlparse(template_url)
        if _is_ip_address(parts.hostname or ""):
            template_url = parts._replace(netloc=f"localhost:{parts.port}" if parts.port else "localhost").geturl()
        return read(template_url, *args, **kwargs)

    return read_template


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@contextmanager
def template_url_path_style_for_ip_hosts() -> Iterator[None]:
    read_template = _path_style_for_ip_hosts(cfn_utils.get_stack_from_s3_url)
    with ExitStack() as stack:
        # responses.py and models.py import the function by name.
        stack.enter_context(patched(cfn_responses, "get_stack_from_s3_url", read_template))
        stack.enter_context(patched(cfn_models, "get_stack_from_s3_url", read_template))
        yield


# --- Defect: DescribeChangeSet for a change set that does not exist answers ValidationError ("Stack with id
# ... does not exist") instead of ChangeSetNotFound. Before an update the CDK CLI looks for its previous
# change set to clean it up, treats only ChangeSetNotFound as "none there", and fails on anything else.
class ChangeSetNotFoundError(CloudFormationError):
    code = "ChangeSetNotFound"

    def __init__(self, change_set_name: str) -> None:
        super().__init__(f"ChangeSet [{change_set_name}] does not exist")


@contextmanager
def missing_change_set_is_change_set_not_found() -> Iterator[None]:
    describe = cfn_models.CloudFormationBackend.describe_change_set

    def describe_change_set(self: cfn_models.CloudFormationBackend, change_set_name: str) -> Any:
        try:
            return describe(self, change_set_name)
        except ValidationError as error:
            raise ChangeSetNotFoundError(change_set_name) from error

    with patched(cfn_models.CloudFormationBackend, "describe_change_set", describe_change_set):
        yield


# --- Defect: a change set that keeps a parameter (UsePreviousValue, as `cdk deploy` does for BootstrapVersion)
# copies the stack's RESOLVED value, so for an SSM-typed parameter the update looks up an SSM parameter named
# after the value ("30") and fails with a server error. AWS keeps the parameter's name and resolves it anew.
@contextmanager
def kept_ssm_parameter_is_not_resolved_twice() -> Iterator[None]:
    create = cfn_models.CloudFormationBackend.create_change_set

    def create_change_set(self: cfn_models.CloudFormationBackend, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("change_set_type") == "UPDATE":
            stack = next((s for s in self.stacks.values() if s.name == kwargs["stack_name"]), None)
            if stack is not None:
                kwargs["parameters"] = _unresolved_ssm_parameters(stack, kwargs.get("parameters") or {})
        return create(self, *args, **kwargs)

    with patched(cfn_models.CloudFormationBackend, "create_change_set", create_change_set):
        yield


def _unresolved_ssm_parameters(stack: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    """Put back the SSM parameter name for every SSM-typed parameter that came in as its resolved value."""
    from moto.ssm.models import ssm_backends

    ssm = ssm_backends[stack.account_id][stack.region_name]
    declared = stack.resource_map._template.get("Parameters", {})  # the deployed template (a change set's too)
    previous_input = stack.resource_map.input_parameters
    fixed = dict(parameters)
    for key, value in parameters.items():
        ssm_typed = str(declared.get(key, {}).get("Type", "")).startswith("AWS::SSM::Parameter::")
        resolved_before = stack.resource_map.resolved_parameters.get(key)
        if ssm_typed and value == resolved_before and ssm.get_parameter(str(value)) is None:
            if key in previous_input:
                fixed[key] = previous_input[key]
            else:
                del fixed[key]  # it was the template's Default (the SSM name): let the Default apply again
    return fixed


# --- Defect: executing a change set creates the added resources in template order and ignores DependsOn
# (create_stack honours it). A CDK API Gateway Deployment comes before the Methods it DependsOn, so moto
# refuses to deploy an API with no methods yet. Order the added resources so each follows its DependsOn.
@contextmanager
def change_set_honours_depends_on() -> Iterator[None]:
    diff = cfn_parsing.ResourceMap.build_resource_diff

    def build_resource_diff(self: cfn_parsing.ResourceMap, other_template: dict[str, Any], *args: Any) -> Any:
        actions = diff(self, other_template, *args)
        actions["Add"] = in_depends_on_order(actions["Add"], other_template.get("Resources", {}))
        return actions

    with patched(cfn_parsing.ResourceMap, "build_resource_diff", build_resource_diff):
        yield


def in_depends_on_order(names: list[str], resources: dict[str, Any]) -> list[str]:
    """`names` reordered so that each comes after the names among them that it DependsOn (else kept in order)."""
    wanted, ordered, visiting = set(names), [], set()

    def visit(name: str) -> None:
        if name in ordered or name in visiting:
            return  # placed already, or a cycle (CloudFormation rejects those; keep going)
        visiting.add(name)
        depends_on = resources.get(name, {}).get("DependsOn", [])
        for dependency in [depends_on] if isinstance(depends_on, str) else depends_on:
            if dependency in wanted:
                visit(dependency)
        visiting.discard(name)
        ordered.append(name)

    for name in names:
        visit(name)
    return ordered


# --- Defect: executing a change set builds the resources but leaves the stack's Outputs as the stack had them
# before (none, for a stack created by a change set): DescribeStacks lists no Outputs after `cdk deploy`.
# UpdateStack refreshes them from the new template; do the same (the map is built from stack.template_dict).
@contextmanager
def change_set_refreshes_outputs() -> Iterator[None]:
    apply = cfn_models.ChangeSet.apply

    def apply_and_refresh(self: cfn_models.ChangeSet) -> None:
        apply(self)
        self.stack.template = self.template
        self.stack.template_dict = self.template_dict
        self.stack.output_map = self.stack._create_output_map()

    with patched(cfn_models.ChangeSet, "apply", apply_and_refresh):
        yield


@contextmanager
def all_cfn_server_workarounds() -> Iterator[None]:
    with ExitStack() as stack:
        stack.enter_context(template_url_path_style_for_ip_hosts())
        stack.enter_context(missing_change_set_is_change_set_not_found())
        stack.enter_context(kept_ssm_parameter_is_not_resolved_twice())
        stack.enter_context(change_set_honours_depends_on())
        stack.enter_context(change_set_refreshes_outputs())
        yield
