"""Shared fixtures. Integration and end-to-end tests run against the real emulators, started once per session."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from speakerline_tools import stack
from tests.fakes import MemoryBlobStore

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Fixtures whose tests run a real diarization model (seconds each): such a test is marked `engine`, and `make unit`
# (the inner loop: pure logic) leaves it to `make test`.
ENGINE_FIXTURES = frozenset({"embedded_engine", "pipeline_dir"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers by what a test needs, declared once here instead of in every file: `infra` for the deployment checks
    (terraform, checkov, compose: `make infra-tools`), `engine` for the real model; and for pytest-xdist, every e2e
    test in one group, so that one worker runs them all on one shared stack (`pipeline`) instead of each worker
    starting a stack of its own, and the engine's tests in another. Runs before xdist reads the groups (tryfirst)."""
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if path.is_relative_to(REPO / "tests" / "infra"):
            item.add_marker(pytest.mark.infra)
        if ENGINE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)
        if item.get_closest_marker("engine") is not None:
            # one worker loads the model once (a few seconds and 1.5 GB each) and keeps one core busy with it
            item.add_marker(pytest.mark.xdist_group("engine"))
        if item.get_closest_marker("e2e") is not None:
            item.add_marker(pytest.mark.xdist_group("stack"))
    # The longest-running work first, so that the other workers share out the short tests meanwhile instead of
    # waiting for the stack's group at the end (a stable sort: each file keeps its own order).
    items.sort(key=_start_order)


def _start_order(item: pytest.Item) -> int:
    if item.get_closest_marker("e2e") is not None:
        return 0
    if item.get_closest_marker("integration") is not None or item.get_closest_marker("engine") is not None:
        return 1
    return 2


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.StackConfig]:
    """Pub/Sub + Firestore emulators and fake-gcs-server with the topology applied; no services yet."""
    cfg = stack.StackConfig(
        root=tmp_path_factory.mktemp("stack"),
        project="speakerline-test",
        pubsub_port=_free_port(),
        firestore_port=_free_port(),
        gcs_port=_free_port(),
        api_port=_free_port(),
        services=False,
    )
    saved = {k: os.environ.get(k) for k in cfg.emulator_env()}
    try:
        stack.up(cfg, say=lambda _: None)
        yield cfg
    finally:
        stack.down(cfg, say=lambda _: None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def unique() -> str:
    """A short unique suffix for resources a test creates for itself."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def blobs() -> MemoryBlobStore:
    return MemoryBlobStore()


SAMPLE_AUDIO = REPO / "tests" / "data" / "sample" / "conversation.flac"
SAMPLE_RTTM = REPO / "tests" / "data" / "sample" / "conversation.rttm"


def example_data(name: str) -> dict:  # type: ignore[type-arg]
    """The data of schemas/events/<name>/v1.example.json (a fresh copy)."""
    import json

    return dict(json.loads((REPO / "schemas" / "events" / name / "v1.example.json").read_text())["data"])


@pytest.fixture
def example():  # type: ignore[no-untyped-def]
    return example_data


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 recording POSTs and answering with `status`."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.status = 200
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.server.shutdown()
