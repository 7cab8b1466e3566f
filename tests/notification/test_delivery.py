"""Delivery against real local HTTP(S) servers: no mocking of requests."""

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from notification.delivery import DeliveryResult, deliver, pinned_session

SLOW_S = 1.0


class Handler(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], bytes]] = []  # noqa: RUF012 - shared on purpose: the test reads what the server saw

    def log_message(self, format, *args):  # keep test output clean
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Handler.received.append((self.path, dict(self.headers), body))
        routes = {
            "/ok": (200, {}, b"thanks"),
            "/accepted": (202, {}, b""),
            "/fail": (500, {}, b"<html>\n  internal   error\n</html>"),
            "/unavailable": (503, {"Retry-After": "30"}, b""),
            "/missing": (404, {}, b"no such hook"),
            "/gone": (410, {}, b""),
            "/timeout": (408, {}, b""),
            "/early": (425, {}, b""),
            "/ratelimit": (429, {"Retry-After": "7"}, b"slow down"),
            "/redirect": (302, {"Location": "http://169.254.169.254/latest/meta-data"}, b""),
            "/huge": (500, {}, b"x" * 5_000_000),
        }
        if self.path == "/slow":
            time.sleep(SLOW_S)
            routes["/slow"] = (200, {}, b"late")
        status, headers, payload = routes.get(self.path, (200, {}, b""))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        # The client stops reading large bodies on purpose.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(payload)


def _serve(server: ThreadingHTTPServer) -> Iterator[int]:
    server.daemon_threads = True
    # A short poll interval keeps shutdown (and so each test's teardown) fast.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server_port() -> Iterator[int]:
    Handler.received = []
    yield from _serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False  # a developer's HTTP(S)_PROXY must not intercept 127.0.0.1
        yield s


def post(port, path, session, **kwargs) -> DeliveryResult:
    return deliver(
        f"http://127.0.0.1:{port}{path}",
        b'{"id":"e1"}',
        {"Content-Type": "application/json", "Speakerline-Event-Id": "e1"},
        session=session,
        **kwargs,
    )


def test_2xx_is_ok_and_body_and_headers_arrive(server_port, session):
    result = post(server_port, "/ok", session)
    assert result == DeliveryResult(True, 200, False, None, "delivered (HTTP 200)")
    assert post(server_port, "/accepted", session).ok
    path, headers, body = Handler.received[0]
    assert (path, body) == ("/ok", b'{"id":"e1"}')
    assert headers["Content-Type"] == "application/json"
    assert headers["Speakerline-Event-Id"] == "e1"


@pytest.mark.parametrize(
    ("path", "status", "code", "retry_after"),
    [
        ("/fail", 500, "server_error", None),
        ("/unavailable", 503, "server_error", 30.0),
        ("/timeout", 408, "http_retriable", None),
        ("/early", 425, "http_retriable", None),
        ("/ratelimit", 429, "rate_limited", 7.0),
    ],
)
def test_retriable_statuses(server_port, session, path, status, code, retry_after):
    result = post(server_port, path, session)
    assert (result.ok, result.status_code, result.retriable, result.error_code) == (False, status, True, code)
    assert result.retry_after_s == retry_after


def test_error_message_contains_a_normalised_body_excerpt(server_port, session):
    assert post(server_port, "/fail", session).message == "HTTP 500: <html> internal error </html>"
    huge = post(server_port, "/huge", session)
    assert huge.retriable and len(huge.message) < 600


@pytest.mark.parametrize(("path", "status"), [("/missing", 404), ("/gone", 410)])
def test_other_4xx_are_permanent(server_port, session, path, status):
    result = post(server_port, path, session)
    assert (result.ok, result.status_code, result.retriable, result.error_code) == (
        False,
        status,
        False,
        "client_error",
    )


def test_redirects_are_not_followed(server_port, session):
    result = post(server_port, "/redirect", session)
    assert (result.ok, result.status_code, result.retriable, result.error_code) == (
        False,
        302,
        False,
        "redirect_not_followed",
    )
    assert [p for p, _, _ in Handler.received] == ["/redirect"]


def test_slow_receiver_times_out_as_retriable(server_port, session):
    started = time.monotonic()
    result = post(server_port, "/slow", session, timeout_s=0.2)
    assert time.monotonic() - started < SLOW_S
    assert (result.ok, result.status_code, result.retriable, result.error_code) == (False, None, True, "timeout")


def test_connection_refused_is_retriable(session):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: nothing listens there
    result = post(port, "/ok", session, timeout_s=2)
    assert (result.ok, result.retriable, result.error_code) == (False, True, "connection_error")


def test_invalid_url_is_not_retriable(session):
    result = deliver("http://", b"", {}, session=session)
    assert (result.ok, result.retriable, result.error_code) == (False, False, "request_error")


def test_pinned_session_connects_to_vetted_address_with_original_host_header(server_port):
    with pinned_session("hooks.example", "127.0.0.1") as pinned:
        result = deliver(f"http://hooks.example:{server_port}/ok", b"{}", {}, session=pinned)
        assert result.ok
        assert Handler.received[-1][1]["Host"] == f"hooks.example:{server_port}"
        other = deliver(f"http://elsewhere.example:{server_port}/ok", b"{}", {}, session=pinned)
        assert (other.ok, other.retriable, other.error_code) == (False, False, "request_error")
        assert "unvetted host" in other.message


@pytest.fixture
def tls_server(tmp_path) -> Iterator[tuple[int, str, list[str]]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to mint a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=hooks.test",
            "-addext", "subjectAltName=DNS:hooks.test",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server_names: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    Handler.received = []
    for port in _serve(server):
        yield port, str(cert), server_names


def test_pinned_https_keeps_sni_and_certificate_checks(tls_server):
    port, cert, server_names = tls_server
    with pinned_session("hooks.test", "127.0.0.1") as pinned:
        pinned.verify = cert
        result = deliver(f"https://hooks.test:{port}/ok", b"{}", {}, session=pinned)
    assert result.ok, result.message
    assert server_names == ["hooks.test"]
    assert Handler.received[-1][1]["Host"] == f"hooks.test:{port}"
    # The same certificate is wrong for another name: verification must still fail.
    with pinned_session("other.test", "127.0.0.1") as pinned:
        pinned.verify = cert
        refused = deliver(f"https://other.test:{port}/ok", b"{}", {}, session=pinned)
    assert (refused.ok, refused.error_code) == (False, "connection_error")
    assert "certificate" in refused.message.lower() or "hostname" in refused.message.lower()
