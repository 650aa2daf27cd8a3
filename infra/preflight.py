"""`make deploy` runs this before `cdk deploy`: does the Powertools layer the stack resolves exist in the target region?

The stack reads the Powertools layer ARN at deploy time from AWS's public SSM parameter
/aws/service/powertools/python/<architecture>/<runtime>/<version> (infra/constants.py). Powertools has shipped
releases without that parameter in some regions or for some runtimes; CloudFormation then fails the whole deploy
part-way with a terse "Parameters ... do not exist". This check asks SSM first, in the region and account of the
same credentials `cdk deploy` will use (AWS_PROFILE, AWS_REGION / AWS_DEFAULT_REGION or the profile's region), and
stops with what to do instead.

    python -m infra.preflight        (exit 0: found; 1: not found or no region, with the reason)
"""

from __future__ import annotations

import sys
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from infra import constants


class PreflightError(Exception):
    """The deploy would fail: the message says why and what to do."""


def powertools_layer_arn(ssm: Any, region: str) -> str:
    """The layer ARN behind constants.POWERTOOLS_LAYER_PARAMETER in `region`, or PreflightError naming the versions
    that do exist there for this runtime and architecture."""
    name = constants.POWERTOOLS_LAYER_PARAMETER
    try:
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ParameterNotFound":
            raise PreflightError(f"could not read {name} in {region}: {error}") from error
    available = _published_versions(ssm)
    advice = (
        f"versions published there for {constants.LAMBDA_RUNTIME}/{constants.LAMBDA_ARCHITECTURE}: "
        + ", ".join(available[-5:])
        if available
        else f"no Powertools layer is published there for {constants.LAMBDA_RUNTIME}/{constants.LAMBDA_ARCHITECTURE}"
    )
    raise PreflightError(
        f"The Powertools layer parameter {name} does not exist in {region}: Powertools "
        f"{constants.POWERTOOLS_VERSION} has no layer for {constants.LAMBDA_RUNTIME} on "
        f"{constants.LAMBDA_ARCHITECTURE} there, and the deploy would fail. {advice}. Deploy to another region, "
        "or set POWERTOOLS_VERSION in infra/constants.py (and requirements-lambda.txt) to a published version."
    )


def _published_versions(ssm: Any) -> list[str]:
    path = constants.POWERTOOLS_LAYER_PARAMETER.rsplit("/", 1)[0]
    names: list[str] = []
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path):
        names += [parameter["Name"].rsplit("/", 1)[-1] for parameter in page.get("Parameters", [])]
    return sorted(names, key=_version_key)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


def main(session: Any = None) -> int:
    session = session or boto3.session.Session()
    region = session.region_name
    if not region:
        print(
            "preflight: no AWS region: export AWS_REGION (or set one in your profile) before deploying", file=sys.stderr
        )
        return 1
    try:
        arn = powertools_layer_arn(session.client("ssm", region_name=region), region)
    except PreflightError as error:
        print(f"preflight: {error}", file=sys.stderr)
        return 1
    except BotoCoreError as error:  # no credentials, no network: cdk deploy would stop too
        print(f"preflight: cannot reach SSM in {region}: {error}", file=sys.stderr)
        return 1
    print(
        f"preflight: Powertools layer for {constants.LAMBDA_RUNTIME}/{constants.LAMBDA_ARCHITECTURE} in {region}: {arn}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
