"""HTTP/1.1 on the wire for the local API, framed as strictly as API Gateway's front door frames it.

h11 parses every request (request line, headers, Content-Length, chunked bodies); this module adds API
Gateway's documented REST API quotas and hands a request on only once its whole body has arrived within the time
allowed. A client that announces more than it sends, sends too slowly or goes away has started nothing: its
request is answered (when it can still read) and the connection closed, never processed with what did arrive.
Every answer, the refusals included, is JSON; the body of an answer to HEAD is left out, its framing kept.

What API Gateway documents is matched (quotas: "API Gateway quotas for configuring and running a REST API" in the
API Gateway developer guide); where it documents no status, RFC 9112's is used.
"""

from __future__ import annotations

import json
import socket
import socketserver
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

import h11

MAX_BODY_BYTES = 10 * 1024 * 1024  # REST API payload quota, 10 MB, fixed: 413 beyond it, before the body is read
MAX_URL_CHARS = 10_240  # REST API quota: length of the URL of a regional API, in characters
MAX_HEADER_VALUE_BYTES = 10_240  # REST API quota: total combined size of all header values, in bytes
# What h11 buffers of one request's head: the URL and header values at their quotas, header names and separators
# besides; beyond it h11 refuses with 431.
MAX_HEAD_BYTES = MAX_URL_CHARS + MAX_HEADER_VALUE_BYTES + 8 * 1024
REQUEST_TIMEOUT_SECONDS = 30.0  # to receive a whole request (head and body), or the next one on a kept connection
LINGER_SECONDS = 1.0  # after refusing mid-request: read (and drop) what the client still sends, so it gets the answer
RECEIVE_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 200  # of an error message built from what the client sent
# Hop-by-hop fields describe this connection, not the answer: the server sets its own.
HOP_BY_HOP = frozenset(
    {"connection", "content-length", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)


@dataclass(frozen=True)
class WireRequest:
    """One whole request as received: the method and target as sent, headers in order and as cased (a repeated
    name repeated), the body after any chunked coding was removed."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    client_ip: str


@dataclass
class HttpResponse:
    status: int
    body: dict[str, Any] | bytes | None  # a dict is sent as JSON
    headers: dict[str, str] = field(default_factory=dict)


class Gateway(Protocol):
    def handle(self, request: WireRequest) -> HttpResponse: ...


def capped(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text`, or its first `limit` characters and how long it was: an answer never quotes megabytes back."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def refusal(status: int, message: str) -> HttpResponse:
    return HttpResponse(status, {"message": message})


def framing_refusal(request: h11.Request) -> HttpResponse | None:
    """What is wrong with a request's head that h11 lets through, checked before any of its body is read."""
    if request.http_version not in (b"1.0", b"1.1"):
        return refusal(505, "HTTP Version Not Supported")
    names = [name for name, _ in request.headers]
    if b"transfer-encoding" in names and b"content-length" in names:
        # RFC 9112 6.3: Transfer-Encoding overrides Content-Length, but a message with both may be a smuggling attempt;
        # refuse it rather than guess which framing another hop saw.
        return refusal(400, "Transfer-Encoding and Content-Length together are ambiguous")
    if b"transfer-encoding" in names and request.http_version != b"1.1":
        return refusal(400, "Transfer-Encoding needs HTTP/1.1")  # RFC 9112 6.1: faulty framing in HTTP/1.0
    if len(request.target) > MAX_URL_CHARS:
        return refusal(414, f"Request-URI Too Long: over {MAX_URL_CHARS} characters")
    if sum(len(value) for _, value in request.headers) > MAX_HEADER_VALUE_BYTES:
        return refusal(431, f"Request Header Fields Too Large: header values over {MAX_HEADER_VALUE_BYTES} bytes")
    lengths = [value for name, value in request.headers if name == b"content-length"]
    if lengths and int(lengths[0]) > MAX_BODY_BYTES:  # h11 has checked it is one run of digits
        return refusal(413, "Request Too Long")  # API Gateway's REQUEST_TOO_LARGE answer
    return None


class _BodyTooLarge(Exception):
    """A chunked body grew past the payload quota."""


class _Exchange:
    """One client connection: requests in, answers out, in order, until either side closes."""

    def __init__(self, sock: socket.socket, client_ip: str, gateway: Gateway, timeout_seconds: float) -> None:
        self.sock = sock
        self.client_ip = client_ip
        self.gateway = gateway
        self.timeout_seconds = timeout_seconds
        self.http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.received = False  # any byte of the current request
        self.deadline = 0.0  # to receive the current request whole (or its first byte, while the connection idles)
        self.head_only = False  # the current request is a HEAD: its answer carries no body

    def serve(self) -> None:
        try:
            while self._serve_one():
                self.http.start_next_cycle()
        except OSError:  # the client reset the connection or stopped reading: nobody is left to answer
            return
        except h11.LocalProtocolError as error:  # an answer HTTP cannot carry, found while sending it: close
            print(json.dumps({"level": "ERROR", "integration_error": capped(repr(error))}))

    def _serve_one(self) -> bool:
        """Receive one request, answer it; True when the connection may carry another."""
        self.received = bool(self.http.trailing_data[0])  # a pipelined request may be buffered already
        self.deadline = time.monotonic() + self.timeout_seconds
        self.head_only = False
        try:
            event = self._next_event()
            if isinstance(event, h11.ConnectionClosed):
                return False
            assert isinstance(event, h11.Request), event
            request = event
            self.head_only = request.method == b"HEAD"
            problem = framing_refusal(request)
            if problem is not None:
                return self._refuse(problem)
            if self.http.they_are_waiting_for_100_continue:
                self._send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
            body = self._read_body()
        except h11.RemoteProtocolError as error:
            # Bad framing, a head too large, a transfer coding other than chunked, or the client closed mid-request.
            return self._refuse(refusal(error.error_status_hint, capped(str(error))))
        except TimeoutError:
            if not self.received:  # an idle kept connection: close it quietly
                return False
            return self._refuse(refusal(408, f"Request Timeout: not received whole within {self.timeout_seconds:g} s"))
        except _BodyTooLarge:
            return self._refuse(refusal(413, "Request Too Long"))
        response = self._dispatch(request, body)
        if request.method == b"CONNECT" and 200 <= response.status < 300:  # this server opens no tunnel
            response = refusal(502, "Internal server error")
        self._answer(response)
        return self.http.our_state is h11.DONE and self.http.their_state is h11.DONE

    def _next_event(self) -> Any:
        while True:
            event = self.http.next_event()
            if event is not h11.NEED_DATA:
                return event
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            data = self.sock.recv(RECEIVE_BYTES)
            if data and not self.received:  # the request begins: the time to receive it whole starts now
                self.received = True
                self.deadline = time.monotonic() + self.timeout_seconds
            self.http.receive_data(data)  # b"" is the client's end of stream

    def _read_body(self) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            event = self._next_event()
            if isinstance(event, h11.EndOfMessage):  # trailer fields are dropped, never merged into the headers
                return b"".join(chunks)
            assert isinstance(event, h11.Data), event
            size += len(event.data)
            if size > MAX_BODY_BYTES:
                raise _BodyTooLarge
            chunks.append(event.data)

    def _dispatch(self, request: h11.Request, body: bytes) -> HttpResponse:
        wire = WireRequest(
            method=request.method.decode("ascii"),
            target=_text(request.target),
            headers=[(_text(name), _text(value)) for name, value in request.headers.raw_items()],
            body=body,
            client_ip=self.client_ip,
        )
        try:
            return self.gateway.handle(wire)
        except Exception as error:  # what API Gateway answers when the integration fails
            print(json.dumps({"level": "ERROR", "path": capped(wire.target), "integration_error": repr(error)}))
            return refusal(502, "Internal server error")

    def _refuse(self, response: HttpResponse) -> bool:
        """Answer (when the state of the exchange still allows one) and close: what is left of this request on the
        connection cannot be told from the next one."""
        if self.http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            response.headers["Connection"] = "close"
            self._answer(response)
        self._linger()
        return False

    def _answer(self, response: HttpResponse) -> None:
        try:
            events = _answer_events(response, head_only=self.head_only)
        except h11.LocalProtocolError as error:  # the integration answered what HTTP cannot carry
            print(json.dumps({"level": "ERROR", "integration_error": capped(repr(error))}))
            events = _answer_events(refusal(502, "Internal server error"), head_only=self.head_only)
        self.sock.settimeout(self.timeout_seconds)
        for event in events:
            self._send(event)

    def _send(self, event: Any) -> None:
        self.sock.sendall(self.http.send(event))

    def _linger(self) -> None:
        """Stop sending, then drop what the client still sends for a moment: closing with unread data would reset
        the connection, and the client could lose the answer before reading it."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                if not self.sock.recv(RECEIVE_BYTES):
                    return
        except OSError:
            return


def _answer_events(response: HttpResponse, *, head_only: bool) -> list[Any]:
    body = response.body
    payload = json.dumps(body).encode() if isinstance(body, dict) else body or b""
    headers = [(name, value) for name, value in response.headers.items() if name.lower() not in HOP_BY_HOP]
    if isinstance(body, dict) or not any(name.lower() == "content-type" for name, _ in headers):
        headers = [(name, value) for name, value in headers if name.lower() != "content-type"]
        headers.append(("Content-Type", "application/json"))
    if response.headers.get("Connection") == "close":
        headers.append(("Connection", "close"))
    no_content = response.status in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED)
    if not no_content:
        headers.append(("Content-Length", str(len(payload))))
    events: list[Any] = [h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status))]
    if payload and not (head_only or no_content):  # an answer to HEAD: the framing of the body, not the body
        events.append(h11.Data(data=payload))
    return [*events, h11.EndOfMessage()]


def _text(raw: bytes) -> str:
    """A header value or target as text: UTF-8 when it is, else ISO-8859-1 (what HTTP/1.1 allows in obs-text)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("iso-8859-1")


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def handler_class(
    gateway: Gateway, timeout_seconds: float = REQUEST_TIMEOUT_SECONDS
) -> type[socketserver.BaseRequestHandler]:
    """A socketserver handler that serves each connection's requests with `gateway`."""

    class Connection(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            _Exchange(self.request, self.client_address[0], gateway, timeout_seconds).serve()

    return Connection
