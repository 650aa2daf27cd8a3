"""Each CloudFormation workaround of the `cdk deploy` path: the defect shows without it, and is gone with it.

When moto fixes a defect, the `with_workaround=False` case fails: drop the workaround and that case.
"""

from __future__ import annotations

import json
from contextlib import nullcontext

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from local_runtime.cfn_server_workarounds import (
    change_set_honours_depends_on,
    change_set_refreshes_outputs,
    in_depends_on_order,
    kept_ssm_parameter_is_not_resolved_twice,
    missing_change_set_is_change_set_not_found,
    template_url_path_style_for_ip_hosts,
)

pytestmark = pytest.mark.unit

QUEUE_TEMPLATE = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q1"}}}}


def _deploy_with_change_set(name: str, template: dict, change_set_type: str, parameters: list | None = None) -> str:
    """What `cdk deploy` does: create a change set, wait for it, execute it; returns the stack status."""
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_change_set(
        StackName=name,
        ChangeSetName=f"cdk-{change_set_type.lower()}",
        ChangeSetType=change_set_type,
        TemplateBody=json.dumps(template),
        Parameters=parameters or [],
    )
    cloudformation.execute_change_set(StackName=name, ChangeSetName=f"cdk-{change_set_type.lower()}")
    return cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]


@pytest.mark.parametrize("with_workaround", [False, True])
def test_template_url_on_an_ip_endpoint_is_read_path_style(moto_cloudformation, with_workaround):
    # Given a template uploaded to S3 and the URL the CDK CLI builds for an endpoint on 127.0.0.1
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="cdk-assets")
    s3.put_object(Bucket="cdk-assets", Key="stack.json", Body=json.dumps(QUEUE_TEMPLATE))
    url = "http://127.0.0.1:5123/cdk-assets/stack.json"
    # When a stack is created from that URL
    with template_url_path_style_for_ip_hosts() if with_workaround else nullcontext():
        if not with_workaround:
            # Then without the workaround moto takes "http://127" for the bucket
            with pytest.raises(ClientError, match="bucket does not exist"):
                boto3.client("cloudformation").create_stack(StackName="s", TemplateURL=url)
            return
        boto3.client("cloudformation").create_stack(StackName="s", TemplateURL=url)
    # Then with it the template is read from bucket/key and the stack has its queue
    resources = boto3.client("cloudformation").list_stack_resources(StackName="s")["StackResourceSummaries"]
    assert [resource["LogicalResourceId"] for resource in resources] == ["Queue"]


@pytest.mark.parametrize("with_workaround", [False, True])
def test_a_missing_change_set_is_change_set_not_found(moto_cloudformation, with_workaround):
    # Given a stack without any change set
    boto3.client("cloudformation").create_stack(StackName="s", TemplateBody=json.dumps(QUEUE_TEMPLATE))
    # When the CLI looks for its previous change set
    with (
        missing_change_set_is_change_set_not_found() if with_workaround else nullcontext(),
        pytest.raises(ClientError) as raised,
    ):
        boto3.client("cloudformation").describe_change_set(StackName="s", ChangeSetName="cdk-deploy-change-set")
    # Then the error code is ChangeSetNotFound, as on AWS (moto says ValidationError)
    expected = "ChangeSetNotFound" if with_workaround else "ValidationError"
    assert raised.value.response["Error"]["Code"] == expected


@pytest.mark.parametrize("with_workaround", [False, True])
def test_an_update_keeping_an_ssm_parameter_resolves_it_from_its_name(moto_cloudformation, with_workaround):
    # Given a stack whose template reads a version from an SSM parameter, as CDK stacks read BootstrapVersion
    boto3.client("ssm").put_parameter(Name="/cdk-bootstrap/test/version", Value="30", Type="String")
    parameter = {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/cdk-bootstrap/test/version"}
    template = {"Parameters": {"BootstrapVersion": parameter}, **QUEUE_TEMPLATE}
    assert _deploy_with_change_set("s", template, "CREATE") == "CREATE_COMPLETE"
    # When a change adds a queue and keeps the parameter's previous value, as `cdk deploy` does
    changed = json.loads(json.dumps(template))
    changed["Resources"]["Second"] = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q2"}}
    keep = [{"ParameterKey": "BootstrapVersion", "UsePreviousValue": True}]
    with kept_ssm_parameter_is_not_resolved_twice() if with_workaround else nullcontext():
        if not with_workaround:
            # Then without the workaround moto looks up an SSM parameter named "30" and fails
            with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'value'"):
                _deploy_with_change_set("s", changed, "UPDATE", keep)
            return
        status = _deploy_with_change_set("s", changed, "UPDATE", keep)
    # Then with it the update completes and the parameter still holds the SSM value
    assert status == "UPDATE_COMPLETE"
    stack = boto3.client("cloudformation").describe_stacks(StackName="s")["Stacks"][0]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["BootstrapVersion"] == "30"
    assert boto3.client("sqs").get_queue_url(QueueName="q2")["QueueUrl"].endswith("/q2")


def _api_template() -> dict:
    """An API Gateway REST API as CDK writes it: the Deployment before the Method it DependsOn."""
    api = {"Ref": "Api"}
    return {
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "orders"}},
            "Deployment": {
                "Type": "AWS::ApiGateway::Deployment",
                "Properties": {"RestApiId": api},
                "DependsOn": ["OrdersPost"],
            },
            "Orders": {
                "Type": "AWS::ApiGateway::Resource",
                "Properties": {
                    "RestApiId": api,
                    "ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
                    "PathPart": "orders",
                },
            },
            "OrdersPost": {
                "Type": "AWS::ApiGateway::Method",
                "Properties": {
                    "RestApiId": api,
                    "ResourceId": {"Ref": "Orders"},
                    "HttpMethod": "POST",
                    "AuthorizationType": "AWS_IAM",
                    "Integration": {
                        "Type": "AWS",
                        "IntegrationHttpMethod": "POST",
                        "Uri": "arn:aws:apigateway:us-east-1:states:action/StartExecution",
                    },
                },
            },
        }
    }


@pytest.mark.parametrize("with_workaround", [False, True])
def test_a_change_set_creates_a_resource_after_what_it_depends_on(moto_cloudformation, with_workaround):
    # Given an API whose Deployment DependsOn its Method but comes first in the template
    template = _api_template()
    # When it is deployed through a change set, as `cdk deploy` does
    with change_set_honours_depends_on() if with_workaround else nullcontext():
        if not with_workaround:
            # Then without the workaround the Deployment is created first, on an API with no method yet
            # (moto's API Gateway error does not even reach the client as a CloudFormation error)
            with pytest.raises(ResponseParserError, match="contain any methods"):
                _deploy_with_change_set("api", template, "CREATE")
            return
        status = _deploy_with_change_set("api", template, "CREATE")
    # Then with it the Method exists first and the Deployment succeeds
    assert status == "CREATE_COMPLETE"
    api_id = boto3.client("apigateway").get_rest_apis()["items"][0]["id"]
    assert len(boto3.client("apigateway").get_deployments(restApiId=api_id)["items"]) == 1


def test_depends_on_order_puts_dependencies_first_and_keeps_the_rest_in_order():
    # Given resources where C depends on D, D on B (as a string), and A on something not being added
    resources = {"A": {"DependsOn": ["Z"]}, "B": {}, "C": {"DependsOn": ["D"]}, "D": {"DependsOn": "B"}}
    # When ordered / Then each follows its dependencies, independent ones keep their place
    assert in_depends_on_order(["A", "C", "B", "D"], resources) == ["A", "B", "D", "C"]


@pytest.mark.parametrize("with_workaround", [False, True])
def test_a_change_set_gives_the_stack_its_outputs(moto_cloudformation, with_workaround):
    # Given a template with an output, deployed through a change set as `cdk deploy` does
    template = {**QUEUE_TEMPLATE, "Outputs": {"QueueUrl": {"Value": {"Ref": "Queue"}}}}
    with change_set_refreshes_outputs() if with_workaround else nullcontext():
        assert _deploy_with_change_set("s", template, "CREATE") == "CREATE_COMPLETE"
    # When the stack is described
    stack = boto3.client("cloudformation").describe_stacks(StackName="s")["Stacks"][0]
    # Then with the workaround it lists the output; moto lists none
    queue_url = boto3.client("sqs").get_queue_url(QueueName="q1")["QueueUrl"]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    assert (outputs == {"QueueUrl": queue_url}) is with_workaround
