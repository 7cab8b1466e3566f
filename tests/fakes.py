"""Test doubles of speakerline's ports, for handler unit tests (integration and end-to-end tests use the real
emulators and fake-gcs-server instead)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from speakerline.events import CloudEvent, Event


class MemoryBlobStore:
    """In-memory implementation of speakerline.storage.BlobStore, for handler unit tests (integration and
    end-to-end tests use fake-gcs-server)."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.generations: dict[str, str] = {}

    def put(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.objects[uri] = (data, content_type)
        self.generations[uri] = str(int(self.generations.get(uri, "0")) + 1)

    def stat(self, uri: str) -> Any:
        from speakerline.storage import ObjectInfo, ObjectNotFound

        if uri not in self.objects:
            raise ObjectNotFound(uri)
        data, content_type = self.objects[uri]
        return ObjectInfo(uri, len(data), content_type, self.generations[uri])

    def open_read(self, uri: str) -> Any:
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


class RecordingPublisher:
    """`EventPublisher` that keeps what it was given, validated as the real one would (to_pubsub)."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.raw: list[tuple[str, bytes, dict[str, str]]] = []

    def publish(self, events: Sequence[Event[Any] | CloudEvent]) -> list[str]:
        from speakerline.events import to_pubsub

        for event in events:
            to_pubsub(event)
            self.events.append(event.to_cloudevent() if isinstance(event, Event) else event)
        return [str(i) for i in range(len(events))]

    def publish_raw(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        self.raw.append((topic, data, dict(attributes)))
        return str(len(self.raw))

    def types(self) -> list[str]:
        return [str(e["type"]) for e in self.events]


class InMemoryJobStore:
    """The projector's `JobStore` in a dict, with the same dedup semantics as its Firestore adapter: an event id
    is applied once, and the job document and the event record are written together."""

    def __init__(self) -> None:
        import threading

        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def apply(self, event: Event[Any]) -> bool:
        from projector.projection import job_id_of, project
        from projector.store import event_record

        job_id = job_id_of(event)
        with self._lock:
            seen = self.events.setdefault(job_id, {})
            if event.id in seen:
                return False
            self.jobs[job_id] = project(self.jobs.get(job_id), event)
            seen[event.id] = event_record(event)
            return True
