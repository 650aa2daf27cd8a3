"""The deployed REST API, served on 127.0.0.1: what API Gateway does in front of the API Lambda, locally.

Routes, authorisation, required parameters, request validator and model are read from the API Gateway
resources of the template the local cloud deployed (so they are the ones `cdk deploy` sends to AWS). Each
request is received whole first (local_runtime/http_wire.py: framing, quotas, timeouts), then checked the way API
Gateway checks it (an unknown resource or method is refused, SigV4 against the local credentials for AWS_IAM
methods, then the request validator with the model's JSON schema), turned into a REST API proxy event (payload
v1) with the headers API Gateway forwards, and handed to the SAME handler function the template names, imported
with that function's environment from the local cloud; its answer goes back as the HTTP response. The scheduled
reconciler runs on its rule's rate with the stack's other EventBridge rules (local_runtime/eventbridge.py);
`run_schedule` runs it now.
"""

from __future__ import annotations

import base64
import itertools
import json
import queue
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import jsonschema
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from local_runtime.cloud import ACCOUNT_ID, REGION, DeployedFunction, LocalCloud
from local_runtime.http_wire import MAX_MESSAGE_CHARS, HttpResponse, WireRequest, capped, handler_class, refusal
from local_runtime.lambda_output import LAMBDA_THREAD_PREFIX, ensure_routed
from local_runtime.sigv4 import SignatureRejected, sign, verify
from saga_records.starter import SagaStarter

HOST = "127.0.0.1"
# Warm environments of a function behind the API: Lambda scales out per concurrent request, so a burst of
# concurrent duplicates really runs concurrently.
API_ENVIRONMENTS = 20
API_PACKAGE = "saga_api"  # the Lambda package behind the API (lambdas/saga_api)
# API Gateway's answer to a resource or method the API does not define, HEAD, OPTIONS, TRACE, CONNECT and any other
# method included, signed or not: 403 {"message": "Missing Authentication Token"} (developer guide, "Gateway response
# types": MISSING_AUTHENTICATION_TOKEN covers "an unsupported API method or resource").
NO_SUCH_ROUTE = "Missing Authentication Token"
# The request validator's answer lists at most this many problems, and quotes a rejected value at most this long.
MAX_LISTED_PROBLEMS = 10
MAX_QUOTED_CHARS = 80
# Request headers that never reach the integration: framing of the connection API Gateway received (its own request
# to Lambda has its own), and hop-by-hop fields (RFC 9110 7.6.1).
NOT_FORWARDED = frozenset(
    [
        "connection",
        "content-length",
        "expect",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ]
)
# What a method ANY stands for (developer guide, "Set up a method request"): "all of the supported HTTP methods of
# DELETE, GET, HEAD, OPTIONS, PATCH, POST, and PUT" (never TRACE or CONNECT).
ANY_METHODS = frozenset(("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"))


@dataclass(frozen=True)
class Route:
    resource: str  # e.g. /orders/{id}
    method: str
    function: DeployedFunction
    authorization: str  # AWS_IAM, NONE, ...
    validate_body: bool
    validate_parameters: bool
    schemas: dict[str, dict[str, Any]]  # the request models by content type (application/json, $default, ...)
    required_parameters: tuple[str, ...]  # method.request.querystring.status, ...

    def match(self, path: str) -> dict[str, str] | None:
        pattern = re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.resource))
        found = re.fullmatch(pattern, path)
        return found.groupdict() if found else None

    def schema_for(self, content_type: str | None) -> dict[str, Any] | None:
        """The model the validator checks a body of this content type against; None: the body is not validated.
        API Gateway's developer guide (request validation): "If no matching content type is found, request validation
        is not performed", and "$default" matches any. A request without Content-Type is taken as application/json
        (what API Gateway assumes); parameters such as charset do not change the media type."""
        media_type = (content_type or "application/json").split(";", 1)[0].strip().lower()
        return self.schemas.get(media_type, self.schemas.get("$default"))


class StartExecutionFaults:
    """Make StartExecution fail (throttled) for chosen saga ids: the orphan path, on demand. Hooked on the API's saga
    starters' Step Functions clients (their botocore events), so the starters run unchanged."""

    def __init__(self) -> None:
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def throttle(self, saga_id: str, times: int = 1) -> None:
        with self._lock:
            self._failures[saga_id] = times

    def attach(self, starter: SagaStarter) -> None:
        """Throttle the starter's StartExecution calls planned here (before any request leaves the client)."""
        starter.step_functions.meta.events.register(
            "before-parameter-build.sfn.StartExecution", self._before_start, unique_id="local-start-execution-faults"
        )

    def _before_start(self, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            left = self._failures.get(params.get("name", ""), 0)
            if left:
                self._failures[params["name"]] = left - 1
        if left:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "injected: rate exceeded"}}, "StartExecution"
            )


class LocalHttpApi:
    def __init__(self, cloud: LocalCloud, *, port: int = 0) -> None:
        self.cloud = cloud
        self.faults = StartExecutionFaults()
        self._port = port
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pools: dict[str, queue.Queue[Any]] = {}
        self.credentials = boto3.Session().get_credentials().get_frozen_credentials()
        self._read_template()

    # -- what the template says ------------------------------------------------------------------------
    def _read_template(self) -> None:
        resources = self.cloud.template["Resources"]
        physical = {
            resource["LogicalResourceId"]: resource["PhysicalResourceId"]
            for resource in boto3.client("cloudformation").list_stack_resources(StackName=self.cloud.stack_name)[
                "StackResourceSummaries"
            ]
        }
        by_name = {function.name: function for function in self.cloud.functions.values()}
        stages = [r["Properties"]["StageName"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage"]
        if len(stages) != 1:
            raise RuntimeError(f"expected one API Gateway stage in the template, found {stages}")
        self.stage = stages[0]

        def path_of(resource_ref: Any) -> str:
            if isinstance(resource_ref, dict) and "Fn::GetAtt" in resource_ref:
                return ""  # the RestApi's root resource
            resource = resources[resource_ref["Ref"]]["Properties"]
            return f"{path_of(resource['ParentId'])}/{resource['PathPart']}"

        self.routes: list[Route] = []
        for resource in resources.values():
            if resource["Type"] != "AWS::ApiGateway::Method":
                continue
            properties = resource["Properties"]
            validator = (
                resources[properties["RequestValidatorId"]["Ref"]]["Properties"]
                if "RequestValidatorId" in properties
                else {}
            )
            schemas = {
                content_type.lower(): resources[model["Ref"]]["Properties"]["Schema"]
                for content_type, model in properties.get("RequestModels", {}).items()
            }
            function_id = _lambda_of(properties["Integration"]["Uri"])
            self.routes.append(
                Route(
                    resource=path_of(properties["ResourceId"]) or "/",
                    method=properties["HttpMethod"],
                    function=by_name[physical[function_id]],
                    authorization=properties.get("AuthorizationType", "NONE"),
                    validate_body=bool(validator.get("ValidateRequestBody")),
                    validate_parameters=bool(validator.get("ValidateRequestParameters")),
                    schemas=schemas,
                    required_parameters=tuple(
                        name for name, required in properties.get("RequestParameters", {}).items() if required
                    ),
                )
            )
        # The API's own scheduled function (the orphan reconciler), for `run_schedule`; the local EventBridge runs
        # it, with every other rule of the stack, on its schedule.
        self.schedules: list[DeployedFunction] = []
        for resource in resources.values():
            if resource["Type"] != "AWS::Events::Rule" or "ScheduleExpression" not in resource["Properties"]:
                continue
            for target in resource["Properties"]["Targets"]:
                function = by_name[physical[target["Arn"]["Fn::GetAtt"][0]]]
                if function.handler.startswith(f"{API_PACKAGE}."):
                    self.schedules.append(function)

    # -- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> LocalHttpApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for function in [route.function for route in self.routes] + self.schedules:
            if function.name in self._pools:
                continue
            pool: queue.Queue[Any] = queue.Queue()
            if any(route.function is function for route in self.routes):
                self.cloud.scale_out(function, API_ENVIRONMENTS)
            for environment in function.environments:
                for built in environment.built:  # StartExecution goes through the fault switch (off unless planned)
                    if isinstance(built, SagaStarter):
                        self.faults.attach(built)
                pool.put(environment)
            self._pools[function.name] = pool
        self.server = _Server((HOST, self._port), handler_class(self))
        self._serve(self.server.serve_forever, "local-http-api")

    def stop(self) -> None:
        self._stop.set()
        if hasattr(self, "server"):
            self.server.shutdown()
            self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _serve(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    @property
    def url(self) -> str:
        """Base URL of the stage, like https://{api}.execute-api.{region}.amazonaws.com/{stage}."""
        return f"http://{HOST}:{self.server.server_address[1]}/{self.stage}"

    # -- invoking the functions ------------------------------------------------------------------------
    def invoke(self, function: DeployedFunction, event: dict[str, Any]) -> Any:
        """One invocation in a free execution environment of `function` (Lambda runs one event per environment)."""
        pool = self._pools[function.name]
        environment = pool.get()
        context = function.new_context()
        thread = threading.current_thread()
        name, thread.name = thread.name, f"{LAMBDA_THREAD_PREFIX}{function.name}"  # its output is Lambda output
        ensure_routed()
        try:
            return environment.entry_point(event, context)
        finally:
            thread.name = name
            pool.put(environment)

    def run_schedule(self, function: DeployedFunction | None = None) -> Any:
        """Invoke a scheduled function now, with the event EventBridge sends (the reconciler by default)."""
        function = function or self.schedules[0]
        # The local EventBridge runs the same function on its schedule: one event at a time, as Lambda does.
        with function.invoke_lock:
            return self.invoke(function, self._scheduled_event())

    @staticmethod
    def _scheduled_event() -> dict[str, Any]:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [],
            "detail": {},
        }

    # -- what API Gateway does with a request ----------------------------------------------------------
    def handle(self, request: WireRequest) -> HttpResponse:
        """What API Gateway does with a whole request: route, authorise, validate, then the integration."""
        split = urlsplit(request.target)
        stage_prefix = f"/{self.stage}"
        if not (split.path == stage_prefix or split.path.startswith(f"{stage_prefix}/")):
            return refusal(403, NO_SUCH_ROUTE)
        path = split.path[len(stage_prefix) :] or "/"
        route, path_parameters = self._route(request.method, path)
        if route is None:
            return refusal(403, NO_SUCH_ROUTE)
        caller = None
        if route.authorization == "AWS_IAM":
            try:
                caller = verify(
                    request.method,
                    f"http://{_last(request.headers, 'host') or ''}{request.target}",
                    headers=request.headers,
                    body=request.body,
                    credentials=self.credentials,
                    region=REGION,
                )
            except SignatureRejected as rejected:
                return refusal(403, str(rejected))
        query = parse_qs(split.query, keep_blank_values=True)
        if route.validate_parameters:
            missing = [
                parameter.rsplit(".", 1)[-1]
                for parameter in route.required_parameters
                if not _has_parameter(parameter, query, request.headers, path_parameters)
            ]
            if missing:
                return refusal(400, f"Missing required request parameters: [{', '.join(missing)}]")
        schema = route.schema_for(_last(request.headers, "content-type"))
        if route.validate_body and schema is not None:
            problems = _schema_problems(schema, request.body)
            if problems:
                return HttpResponse(400, {"message": "Invalid request body", "errors": problems})
        event = self._event(route, request, path, split.path, query, path_parameters, caller)
        return _proxy_answer(self.invoke(route.function, event))

    def _route(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        # API Gateway prefers a literal path part over a {parameter}, and a method over ANY: try the routes with fewer
        # parameters first, and on one resource the method before ANY. Methods are case-sensitive ("get" is none).
        def preference(route: Route) -> tuple[int, bool]:
            return route.resource.count("{"), route.method == "ANY"

        for route in sorted(self.routes, key=preference):
            allowed = route.method == method or (route.method == "ANY" and method in ANY_METHODS)
            if allowed and (parameters := route.match(path)) is not None:
                return route, parameters
        return None, {}

    def _event(
        self,
        route: Route,
        request: WireRequest,
        path: str,
        stage_path: str,
        query: dict[str, list[str]],
        path_parameters: dict[str, str],
        caller: Any,
    ) -> dict[str, Any]:
        headers, multi_headers = _forwarded_headers(request.headers)
        body = request.body
        try:
            text, encoded = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        now = datetime.now(UTC)
        return {
            "resource": route.resource,
            "path": path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": "local",
                "resourceId": route.resource,
                "resourcePath": route.resource,
                "httpMethod": request.method,
                "path": stage_path,
                "stage": self.stage,
                "requestId": str(uuid.uuid4()),
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "protocol": "HTTP/1.1",
                "domainName": _last(request.headers, "host") or HOST,
                "identity": {
                    "sourceIp": request.client_ip,
                    "userAgent": _last(request.headers, "user-agent"),
                    "accessKey": caller.access_key if caller else None,
                    "accountId": ACCOUNT_ID if caller else None,
                    "caller": caller.access_key if caller else None,
                    "user": caller.access_key if caller else None,
                    "userArn": f"arn:aws:iam::{ACCOUNT_ID}:user/local" if caller else None,
                    "cognitoIdentityId": None,
                    "cognitoIdentityPoolId": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                },
            },
            "body": text if body else None,
            "isBase64Encoded": encoded,
        }


def _last(headers: list[tuple[str, str]], name: str) -> str | None:
    """The value of a header (the last one, when it was sent more than once), whatever the case of its name."""
    found = [value for header, value in headers if header.lower() == name]
    return found[-1] if found else None


def _forwarded_headers(received: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The proxy event's `headers` (last value of each) and `multiValueHeaders` (all values, in order): every header
    the client sent, unsigned ones included, named as it named them (the first spelling of a name sent in several),
    except framing and hop-by-hop fields and a SigV4 Authorization header. API Gateway's developer guide, "Amazon API
    Gateway important notes" (REST APIs, headers sent to Lambda and HTTP integrations): "The Authorization header is
    dropped if it contains a Signature Version 4 signature". So the integration never sees SignedHeaders: it cannot
    tell a signed header from an unsigned one."""
    spelled: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in received:
        lowered = name.lower()
        if lowered in NOT_FORWARDED or (lowered == "authorization" and value.lstrip().startswith("AWS4-")):
            continue
        multi.setdefault(spelled.setdefault(lowered, name), []).append(value)
    return {name: values[-1] for name, values in multi.items()}, multi


def _proxy_answer(answer: Any) -> HttpResponse:
    """The HTTP answer from a Lambda proxy integration's result; one it cannot be (API Gateway: 502) raises."""
    status = answer["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int | str) or not 200 <= int(status) <= 599:
        raise ValueError(f"malformed Lambda proxy response: statusCode {capped(repr(status))}")
    headers = {name: str(value) for name, value in (answer.get("headers") or {}).items()}
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(str(value) for value in values)
    payload = answer.get("body") or ""
    body = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode("utf-8")
    return HttpResponse(int(status), body, headers)


def _lambda_of(uri: Any) -> str:
    """Logical id of the function an AWS_PROXY integration URI points at (its Fn::GetAtt)."""
    if isinstance(uri, dict):
        if "Fn::GetAtt" in uri:
            return uri["Fn::GetAtt"][0]
        for value in uri.values():
            if found := _lambda_of(value):
                return found
    if isinstance(uri, list):
        for value in uri:
            if found := _lambda_of(value):
                return found
    return ""


def _has_parameter(
    parameter: str, query: dict[str, list[str]], headers: list[tuple[str, str]], path: dict[str, str]
) -> bool:
    """A required parameter is there and not blank (API Gateway checks presence, not type or format)."""
    _, _, where, name = parameter.split(".", 3)
    if where == "querystring":
        value = (query.get(name) or [""])[-1]
    elif where == "header":
        value = _last(headers, name.lower()) or ""
    else:
        value = path.get(name, "")
    return bool(value.strip())


def _schema_problems(schema: dict[str, Any], body: bytes) -> list[dict[str, str]]:
    """The request validator: the body against the model's JSON schema (draft 4); each problem names its field. A body
    it cannot read (not UTF-8, not strict JSON, nested deeper than it goes) is a problem too: 400, as API Gateway's
    validator answers, never an error of the emulation. Values are quoted capped, and at most MAX_LISTED_PROBLEMS."""
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_not_json)
    except UnicodeDecodeError:
        return [{"field": "body", "problem": "not JSON: not UTF-8 text"}]
    except RecursionError:
        return [{"field": "body", "problem": "not JSON the validator can read: nested too deeply"}]
    except ValueError as error:  # JSONDecodeError, NaN or Infinity, a number too long to convert
        return [{"field": "body", "problem": f"not JSON: {capped(str(error))}"}]
    validator = jsonschema.Draft4Validator(schema)
    try:
        # One problem more than is listed tells whether there are more.
        errors = list(itertools.islice(validator.iter_errors(document), MAX_LISTED_PROBLEMS + 1))
    except RecursionError:
        return [{"field": "body", "problem": "nested too deeply to validate"}]
    problems = []
    for error in sorted(errors, key=lambda e: [(isinstance(part, str), part) for part in e.absolute_path]):
        where = [str(part) for part in error.absolute_path]
        if error.validator == "required" and isinstance(error.instance, dict):
            names = [name for name in error.validator_value if name not in error.instance]
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            names = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        else:
            names = [""]
        problem = _problem(error)
        for name in names[: MAX_LISTED_PROBLEMS + 1]:
            field = ".".join([*where, name] if name else where) or "body"
            problems.append({"field": capped(field), "problem": problem})
    if len(problems) > MAX_LISTED_PROBLEMS:
        problems = problems[:MAX_LISTED_PROBLEMS]
        problems.append({"field": "body", "problem": f"more problems than the {MAX_LISTED_PROBLEMS} listed"})
    return problems


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def _problem(error: jsonschema.ValidationError) -> str:
    """The validator's message naming the broken rule, with the value it quotes capped ('xxx...' is too long)."""
    message = error.message
    if len(message) > MAX_MESSAGE_CHARS:
        quoted = repr(error.instance)
        message = message.replace(quoted, capped(quoted, MAX_QUOTED_CHARS))
    return capped(message)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # listen backlog: a burst of concurrent clients must not be reset (default 5)


# -- the client side: what a caller with AWS credentials does ----------------------------------------------
@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: Any
    headers: dict[str, str]


class SignedApiClient:
    """Calls the API with SigV4-signed requests (service `execute-api`), as an AWS SDK or `curl --aws-sigv4` does."""

    def __init__(self, base_url: str, credentials: Credentials | None = None, region: str = REGION) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials or boto3.Session().get_credentials().get_frozen_credentials()
        self.region = region

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        signed: bool = True,
    ) -> ApiAnswer:
        url = f"{self.base_url}{path}"
        data = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": "application/json", **(headers or {})} if data is not None else dict(headers or {})
        if signed:
            headers = sign(
                method, url, headers=headers, body=data or b"", credentials=self.credentials, region=self.region
            )
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw, answer_headers = response.status, response.read(), dict(response.headers.items())
        except urllib.error.HTTPError as error:
            status, raw, answer_headers = error.code, error.read(), dict(error.headers.items())
        return ApiAnswer(status, json.loads(raw) if raw else None, answer_headers)

    def start(self, path: str, body: dict[str, Any] | str | bytes, *, idempotency_key: str | None = None) -> ApiAnswer:
        """POST /<path>: start a saga of the type behind that route (`path` is its segment, e.g. "orders")."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", f"/{path}", body=body, headers=headers)

    def get(self, path: str, saga_id: str) -> ApiAnswer:
        """GET /<path>/<saga id>: one saga of that route's type."""
        return self.request("GET", f"/{path}/{saga_id}")

    def list(self, path: str, status: str, limit: int | None = None, next_token: str | None = None) -> ApiAnswer:
        """GET /<path>?status=..: that route's sagas in `status`, newest first, a page at a time."""
        query = (
            {"status": status}
            | ({"limit": str(limit)} if limit else {})
            | ({"next_token": next_token} if next_token else {})
        )
        return self.request("GET", f"/{path}?{urllib.parse.urlencode(query)}")


@contextmanager
def serving(cloud: LocalCloud, **options: Any) -> Iterator[tuple[LocalHttpApi, SignedApiClient]]:
    with LocalHttpApi(cloud, **options) as api:
        yield api, SignedApiClient(api.url)
