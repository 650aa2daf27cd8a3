"""The local API's HTTP framing (local_runtime/http_wire.py), byte by byte over a socket pair (no network): a request
reaches the gateway only whole, every refusal is JSON and closes what cannot be framed, and nothing is mis-framed."""

from __future__ import annotations

import io
import json
import select
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPResponse

import pytest

from local_runtime.http_wire import MAX_BODY_BYTES, MAX_HEADER_VALUE_BYTES, MAX_URL_CHARS, HttpResponse, handler_class

pytestmark = pytest.mark.unit
TIMEOUT_SECONDS = 0.5  # the server's, for a whole request: short, so that the timeout cases stay fast
HEAD = b"POST /v1/orders HTTP/1.1\r\nHost: api.local\r\nContent-Type: application/json\r\n"
GET = b"GET /v1/orders HTTP/1.1\r\nHost: api.local\r\n\r\n"


class RecordingGateway:
    """Answers 200 with what it received; remembers every request it was handed."""

    def __init__(self, fail: bool = False) -> None:
        self.requests = []
        self.fail = fail

    def handle(self, request):
        self.requests.append(request)
        if self.fail:
            raise RuntimeError("the integration failed")
        return HttpResponse(200, {"method": request.method, "body": request.body.decode()})


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class _KeptOpen(io.BufferedReader):
    def close(self) -> None:  # http.client closes its file after each answer; several are read from this one
        pass


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = _KeptOpen(socket.SocketIO(sock, "rb"))

    def makefile(self, mode):  # what http.client.HTTPResponse reads from
        return self.file

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answered(self) -> bool:
        """Whether the server has written something (or closed) that this client has not read yet."""
        return bool(select.select([self.sock], [], [], 0)[0])

    def answer(self, method: str = "POST") -> Answer:
        response = HTTPResponse(self, method=method)
        response.begin()
        return Answer(response.status, {name.lower(): value for name, value in response.getheaders()}, response.read())

    def closed_by_server(self, within: float = 3.0) -> bool:
        self.sock.settimeout(within)
        try:
            return self.file.read(1) == b""
        except TimeoutError:
            return False


@contextmanager
def connection(gateway: RecordingGateway, timeout_seconds: float = TIMEOUT_SECONDS):
    """A client socket whose other end is served by the wire handler, as the local API serves a TCP connection."""
    server_side, client_side = socket.socketpair()
    client_side.settimeout(5)

    def serve_then_close():  # what socketserver does with a connection once its handler returns
        handler_class(gateway, timeout_seconds)(server_side, ("127.0.0.1", 40000), None)
        server_side.close()

    serve = threading.Thread(target=serve_then_close, daemon=True)
    serve.start()
    try:
        yield Client(client_side)
    finally:
        client_side.close()
        serve.join(timeout=5)
    assert not serve.is_alive(), "the connection handler did not end"


def test_a_whole_request_reaches_the_gateway_as_sent():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        client.send(HEAD + b'X-Custom: one\r\nx-custom: two\r\nContent-Length: 7\r\n\r\n{"a":1}')
        answer = client.answer()
    assert answer.status == 200
    assert answer.json() == {"method": "POST", "body": '{"a":1}'}
    [request] = gateway.requests
    assert (request.method, request.target, request.client_ip) == ("POST", "/v1/orders", "127.0.0.1")
    # Headers in order and as cased, a repeated one repeated
    custom = [(name, value) for name, value in request.headers if name.lower() == "x-custom"]
    assert custom == [("X-Custom", "one"), ("x-custom", "two")]


@pytest.mark.parametrize(
    "content_length",
    [
        pytest.param(b"seven", id="not a number"),
        pytest.param(b"-7", id="negative"),
        pytest.param(b"+7", id="signed"),
        pytest.param(b"7_0", id="digit separator int() takes"),
        pytest.param("\u0667".encode(), id="a digit that is not ASCII"),
        pytest.param(b"0x7", id="hexadecimal"),
        pytest.param(b"7, 8", id="two values"),
        pytest.param(b"", id="empty"),
    ],
)
def test_an_invalid_content_length_is_a_400_answered_at_once_and_nothing_runs(content_length):
    gateway = RecordingGateway()
    with connection(gateway) as client:
        # Given a request whose Content-Length cannot frame its body / When its head arrives (body never sent)
        client.send(HEAD + b"Content-Length: " + content_length + b"\r\n\r\n")
        answer = client.answer()
        # Then a JSON 400, the connection closed, and the gateway never called
        assert answer.status == 400, answer
        assert answer.headers["content-type"] == "application/json"
        assert "message" in answer.json()
        assert client.closed_by_server()
    assert gateway.requests == []


def test_two_content_length_headers_that_differ_are_a_400():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        client.send(HEAD + b'Content-Length: 7\r\nContent-Length: 70\r\n\r\n{"a":1}')
        assert client.answer().status == 400
        assert client.closed_by_server()
    assert gateway.requests == []


def test_a_content_length_over_the_payload_quota_is_a_413_before_any_body_is_read():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        # When only the head arrives, announcing one byte more than API Gateway's 10 MB
        client.send(HEAD + f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode())
        answer = client.answer()
        assert (answer.status, answer.json()) == (413, {"message": "Request Too Long"})
        assert client.closed_by_server()
    assert gateway.requests == []


def test_a_body_shorter_than_announced_is_never_processed_when_the_client_stops_sending():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        # Given a complete JSON document, sent under a Content-Length that announces more / When the client is done
        client.send(HEAD + b'Content-Length: 20\r\n\r\n{"a":1}')
        client.sock.shutdown(socket.SHUT_WR)
        answer = client.answer()
        # Then a 400, and what did arrive never reached the gateway
        assert answer.status == 400
        assert "closed" in answer.json()["message"]
    assert gateway.requests == []


def test_a_client_that_goes_away_mid_body_has_nothing_processed():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        client.send(HEAD + b'Content-Length: 20\r\n\r\n{"a":1}')
    assert gateway.requests == []


def test_a_body_not_received_whole_in_time_is_a_408_and_nothing_runs():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        # Given a client that sends part of its body and then waits
        started = time.monotonic()
        client.send(HEAD + b'Content-Length: 20\r\n\r\n{"a":1}')
        answer = client.answer()
        # Then, after the server's timeout, a 408 and a closed connection; nothing was processed
        assert answer.status == 408
        assert time.monotonic() - started >= TIMEOUT_SECONDS
        assert client.closed_by_server()
    assert gateway.requests == []


def test_a_body_sent_too_slowly_is_a_408_however_steady_the_trickle():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        client.send(HEAD + b"Content-Length: 20\r\n\r\n")
        # One byte at a time, each well inside the timeout, the whole well beyond it
        for byte in b'{"a":"0123456789"}':
            if client.answered():  # the server gave up on the body (and may close): a client that reads stops
                break
            client.send(bytes([byte]))
            time.sleep(TIMEOUT_SECONDS / 8)
        assert client.answer().status == 408
    assert gateway.requests == []


def test_an_idle_kept_connection_is_closed_quietly():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        client.send(HEAD + b'Content-Length: 7\r\n\r\n{"a":1}')
        assert client.answer().status == 200
        # When the client sends nothing more / Then the server closes, without a 408 for a request never begun
        assert client.closed_by_server()
    assert len(gateway.requests) == 1


def test_the_time_to_send_a_request_starts_with_its_first_byte_not_with_the_idle_connection():
    gateway = RecordingGateway()
    with connection(gateway, timeout_seconds=1.0) as client:
        client.send(HEAD + b'Content-Length: 7\r\n\r\n{"a":1}')
        assert client.answer().status == 200
        # Given a kept connection idle for most of the timeout / When the next request takes half of it to arrive
        time.sleep(0.7)
        client.send(HEAD)
        time.sleep(0.5)
        client.send(b'Content-Length: 7\r\n\r\n{"a":1}')
        # Then it is answered: it arrived whole within the timeout of its own first byte
        assert client.answer().status == 200
    assert len(gateway.requests) == 2


def test_a_chunked_body_reaches_the_gateway_whole_and_the_next_request_is_framed_after_it():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        # Given a chunked POST (with a chunk extension and a trailer) and a GET pipelined behind it
        client.send(
            HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
            b'4;note=x\r\n{"a"\r\n3\r\n:1}\r\n0\r\nX-Trailer: dropped\r\n\r\n'
            b"GET /v1/orders HTTP/1.1\r\nHost: api.local\r\n\r\n"
        )
        first, second = client.answer(), client.answer("GET")
    # Then two answers, the body decoded, the GET seen as a GET with no body, and no trailer taken for a header
    assert (first.status, second.status) == (200, 200)
    assert [(request.method, request.body) for request in gateway.requests] == [("POST", b'{"a":1}'), ("GET", b"")]
    assert all(name.lower() != "x-trailer" for request in gateway.requests for name, _ in request.headers)


def test_a_chunked_body_over_the_payload_quota_is_a_413_and_nothing_runs():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        client.send(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * (1024 * 1024)
        with_headers = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
            client.send(with_headers)
        assert client.answer().status == 413
    assert gateway.requests == []


@pytest.mark.parametrize(
    ("framing", "status"),
    [
        pytest.param(b"Transfer-Encoding: chunked\r\nContent-Length: 7\r\n", 400, id="chunked and a length"),
        pytest.param(b"Transfer-Encoding: gzip, chunked\r\n", 501, id="another coding"),
        pytest.param(b"Transfer-Encoding: identity\r\n", 501, id="identity"),
        pytest.param(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 501, id="chunked twice"),
    ],
)
def test_a_transfer_coding_that_could_be_mis_framed_is_refused_and_the_connection_closed(framing, status):
    gateway = RecordingGateway()
    with connection(gateway) as client:
        client.send(HEAD + framing + b'\r\n7\r\n{"a":1}\r\n0\r\n\r\nGET /v1/orders HTTP/1.1\r\nHost: api.local\r\n\r\n')
        answer = client.answer()
        assert answer.status == status
        assert answer.headers["content-type"] == "application/json"
        # What follows on the connection is never taken for a request
        assert client.closed_by_server()
    assert gateway.requests == []


def test_chunked_in_http_1_0_is_refused():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        client.send(b'POST /v1/orders HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{"a":1}\r\n0\r\n\r\n')
        assert client.answer().status == 400
    assert gateway.requests == []


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "PROPFIND"])
def test_any_method_reaches_the_gateway_and_is_answered_in_json(method):
    gateway = RecordingGateway()
    with connection(gateway) as client:
        client.send(method.encode() + b" /v1/orders HTTP/1.1\r\nHost: api.local\r\n\r\n")
        answer = client.answer(method)
    assert answer.status == 200
    assert answer.json() == {"method": method, "body": ""}
    assert [request.method for request in gateway.requests] == [method]


def test_connect_never_opens_a_tunnel():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        # Given a gateway that answers 200 to anything / When a CONNECT comes, and a GET after it
        client.send(
            b"CONNECT api.local:443 HTTP/1.1\r\nHost: api.local:443\r\n\r\n"
            b"GET /v1/orders HTTP/1.1\r\nHost: api.local\r\n\r\n"
        )
        connect, get = client.answer("CONNECT"), client.answer("GET")
    # Then no 2xx to the CONNECT (it would turn the connection into a tunnel), and the GET read as a request
    assert (connect.status, connect.headers["content-type"]) == (502, "application/json")
    assert get.json() == {"method": "GET", "body": ""}


def test_the_answer_to_head_has_the_framing_of_its_body_but_no_body():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        # Given a HEAD and a GET behind it on the same connection
        client.send(b"HEAD /v1/orders HTTP/1.1\r\nHost: api.local\r\n\r\n" + GET)
        head = client.answer("HEAD")
        get = client.answer("GET")
    # Then the HEAD answer announces the length of the body it leaves out, and the GET answer is read intact after it
    assert head.body == b""
    assert int(head.headers["content-length"]) == len(json.dumps({"method": "HEAD", "body": ""}))
    assert get.json() == {"method": "GET", "body": ""}


def test_a_head_refused_for_its_framing_is_answered_without_a_body():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        client.send(
            f"HEAD /v1/orders HTTP/1.1\r\nHost: api.local\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
        )
        answer = client.answer("HEAD")
        assert (answer.status, answer.body) == (413, b"")
        assert client.closed_by_server()
    assert gateway.requests == []


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        pytest.param(b"NOT A REQUEST\r\n\r\n", 400, id="no request line"),
        pytest.param(b"GET /v1/orders HTTP/1.1\r\n\r\n", 400, id="no Host"),
        pytest.param(b"GET /v1/orders HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="two Hosts"),
        pytest.param(HEAD + b"Content-Length : 7\r\n\r\n", 400, id="space before the colon"),
        pytest.param(b"GET /v1/orders HTTP/2.0\r\nHost: api.local\r\n\r\n", 505, id="HTTP/2 in text"),
        pytest.param(
            b"GET /v1/" + b"a" * MAX_URL_CHARS + b" HTTP/1.1\r\nHost: api.local\r\n\r\n", 414, id="URL over its quota"
        ),
        pytest.param(
            GET[:-2] + b"X-Big: " + b"a" * MAX_HEADER_VALUE_BYTES + b"\r\n\r\n",
            431,
            id="header values over their quota",
        ),
        pytest.param(
            GET[:-2] + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n",
            431,
            id="a head beyond what is buffered",
        ),
    ],
)
def test_a_request_that_is_not_http_is_answered_in_json_and_the_connection_closed(raw, status):
    gateway = RecordingGateway()
    with connection(gateway) as client:
        client.send(raw)
        answer = client.answer()
        assert answer.status == status, answer
        assert answer.headers["content-type"] == "application/json"
        assert len(answer.json()["message"]) < 300  # what the client sent is quoted capped, if at all
        assert client.closed_by_server()
    assert gateway.requests == []


def test_expect_100_continue_is_answered_only_when_the_body_will_be_read():
    gateway = RecordingGateway()
    with connection(gateway) as client:
        # Given a body too large for the quota / Then the refusal comes at once, with no invitation to send it
        client.send(HEAD + f"Expect: 100-continue\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode())
        assert client.answer().status == 413
    with connection(gateway) as client:
        # Given one that fits / Then 100 Continue, then the answer to the body sent after it
        client.send(HEAD + b"Expect: 100-continue\r\nContent-Length: 7\r\n\r\n")
        assert client.file.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert client.file.readline() == b"\r\n"
        client.send(b'{"a":1}')
        assert client.answer().status == 200
    assert len(gateway.requests) == 1


def test_a_failing_integration_is_a_502_in_json():
    gateway = RecordingGateway(fail=True)
    with connection(gateway) as client:
        client.send(HEAD + b'Content-Length: 7\r\n\r\n{"a":1}')
        answer = client.answer()
    assert (answer.status, answer.json()) == (502, {"message": "Internal server error"})


def test_an_answer_http_cannot_carry_becomes_a_502():
    class BadHeaderGateway(RecordingGateway):
        def handle(self, request):
            return HttpResponse(200, b"{}", {"Bad Header": "x"})

    with connection(BadHeaderGateway()) as client:
        client.send(HEAD + b'Content-Length: 7\r\n\r\n{"a":1}')
        assert client.answer().status == 502
