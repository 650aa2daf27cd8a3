"""A moto server in this process, on 127.0.0.1: the local AWS endpoint the CDK CLI deploys to.

The server runs in-process (moto's ThreadedMotoServer) so that the same moto workarounds the local runtime
needs (moto_workarounds.py) and the ones the CloudFormation change-set path needs (cfn_server_workarounds.py)
apply to it, and so the participant handlers, run here too, share its backends.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from moto.server import ThreadedMotoServer

from local_runtime.cfn_server_workarounds import all_cfn_server_workarounds
from local_runtime.cloud import FAKE_CREDENTIALS, environment_variables
from local_runtime.moto_workarounds import all_workarounds

HOST = "127.0.0.1"


@dataclass(frozen=True)
class LocalEndpoint:
    url: str
    port: int

    def environment(self) -> dict[str, str]:
        """What a client (boto3, the CDK CLI) needs to talk to this endpoint instead of AWS."""
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.url}


@contextmanager
def local_aws_endpoint(time_scale: float = 1.0) -> Iterator[LocalEndpoint]:
    """Start moto on a free port of 127.0.0.1 with Step Functions executing state machines; yields its URL.

    While it runs, this process's own boto3 clients point at it (AWS_ENDPOINT_URL and fake credentials).
    """
    with ExitStack() as stack:
        stack.enter_context(all_workarounds(time_scale))
        stack.enter_context(all_cfn_server_workarounds())
        # One access-log line per request would bury the summary.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
        server.start()
        stack.callback(server.stop)
        port = server.get_host_and_port()[1]
        endpoint = LocalEndpoint(url=f"http://{HOST}:{port}", port=port)
        # Service calls made by running state machines go to localhost:MOTO_PORT (moto's boto_client_for).
        stack.enter_context(environment_variables({**endpoint.environment(), "MOTO_PORT": str(port)}))
        _configure(endpoint, {"stepfunctions": {"execute_state_machine": True}})
        yield endpoint


def _configure(endpoint: LocalEndpoint, config: dict[str, object]) -> None:
    """Server mode has no environment variable for moto's config: POST it to /moto-api/config."""
    request = urllib.request.Request(
        f"{endpoint.url}/moto-api/config",
        data=json.dumps(config).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if not 200 <= response.status < 300:
            raise RuntimeError(f"moto refused its config: HTTP {response.status}")


@contextmanager
def serving_this_process() -> Iterator[LocalEndpoint]:
    """Serve the moto backends of this process (a running LocalCloud's) over HTTP on 127.0.0.1.

    moto's server and `mock_aws` share one set of backends in a process, so another process, such as the
    operator CLI in a second terminal, sees and changes the same local stack through this endpoint. This
    process's own clients keep calling moto in-process.
    """
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    try:
        port = server.get_host_and_port()[1]
        yield LocalEndpoint(url=f"http://{HOST}:{port}", port=port)
    finally:
        server.stop()
