"""Shared fixtures. Integration and end-to-end tests run against the real emulators, started once per session."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
# The modules with such tests: pytest-xdist runs each of them on the worker that has loaded the model (`_scope`).
ENGINE_MODULES = frozenset(
    f"tests/diarization/{name}.py"
    for name in ("test_quality", "test_embedded", "test_pieces", "test_pyannote_engine", "test_eval_cli")
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers by what a test needs, declared once here instead of in every file: `infra` for the deployment checks
    (terraform, checkov, compose: `make infra-tools`), `engine` for the real model. Then the longest-running work
    first, so that the other workers share out the short tests meanwhile instead of waiting for the stack's tests at
    the end (a stable sort: each file keeps its own order)."""
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if path.is_relative_to(REPO / "tests" / "infra"):
            item.add_marker(pytest.mark.infra)
        if ENGINE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)
        module = path.relative_to(REPO).as_posix()
        if item.get_closest_marker("engine") is not None and module not in ENGINE_MODULES:
            raise pytest.UsageError(
                f"{item.nodeid} runs the engine: add {module} to ENGINE_MODULES (tests/conftest.py)"
            )
    items.sort(key=lambda item: _scope(item.nodeid) is None)


def _scope(nodeid: str) -> str | None:
    """The shared resource a test needs, which one worker sets up once and runs all its tests on: the stack of the
    e2e tests (the `pipeline` fixture: emulators, every service, the API) or the loaded engine; None for a test any
    worker may run."""
    module = nodeid.split("::", 1)[0]
    if module.startswith("tests/e2e/"):
        return "stack"
    if module in ENGINE_MODULES:
        return "engine"
    return None


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test`'s scheduling on pytest-xdist workers: the tests of one shared resource (`_scope`) on one worker,
    every other test on whichever worker is free. (xdist's own `loadgroup` cannot do it under pytest 9: the group
    suffix it writes into a test's node id has no effect there, so the grouping is silently lost.)"""
    from xdist.scheduler import LoadScopeScheduling

    class SharedResourceScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid) or nodeid

    return SharedResourceScheduling(config, log)


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
