"""Shared fixtures. Integration and end-to-end tests run against the real emulators, started once per session."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from speakerline import stack

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.StackConfig]:
    """Pub/Sub + Firestore emulators and fake-gcs-server with the topology applied; no services yet."""
    cfg = stack.StackConfig(
        root=tmp_path_factory.mktemp("stack"),
        project="speakerline-test",
        pubsub_port=_free_port(),
        firestore_port=_free_port(),
        gcs_port=_free_port(),
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


class MemoryBlobStore:
    """In-memory implementation of speakerline.storage.BlobStore, for handler unit tests (integration and
    end-to-end tests use fake-gcs-server)."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.generations: dict[str, str] = {}

    def put(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.objects[uri] = (data, content_type)
        self.generations[uri] = str(int(self.generations.get(uri, "0")) + 1)

    def stat(self, uri: str):  # type: ignore[no-untyped-def]
        from speakerline.storage import ObjectInfo, ObjectNotFound

        if uri not in self.objects:
            raise ObjectNotFound(uri)
        data, content_type = self.objects[uri]
        return ObjectInfo(uri, len(data), content_type, self.generations[uri])

    def open_read(self, uri: str):  # type: ignore[no-untyped-def]
        import io

        return io.BytesIO(self.read_bytes(uri))

    def read_bytes(self, uri: str) -> bytes:
        from speakerline.storage import ObjectNotFound

        if uri not in self.objects:
            raise ObjectNotFound(uri)
        return self.objects[uri][0]

    def download(self, uri: str, path: Path) -> None:
        path.write_bytes(self.read_bytes(uri))

    def upload_file(self, path: Path, uri: str, content_type: str) -> None:
        self.put(uri, path.read_bytes(), content_type)

    def upload_bytes(self, data: bytes, uri: str, content_type: str) -> None:
        self.put(uri, data, content_type)


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
