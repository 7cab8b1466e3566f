"""Test doubles of speakerline's ports (blob store, publisher, stores, clock, diarization engine, Vertex AI job
client), each declared once here for every unit test that needs it, and the delivery `Context` handler tests pass;
integration and end-to-end tests use the real emulators and fake-gcs-server instead."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from speakerline.events import CloudEvent, Event
from speakerline.timeline import Turn

if TYPE_CHECKING:
    from diarization.engines.base import DiarizationOptions, DiarizationResult, Progress
    from speakerline.runtime import Context


def handler_context(attempt: int = 1, final: bool = False) -> Context:
    """The runtime's `Context` of one delivery of an event, as a handler unit test hands it to the handler."""
    from speakerline.runtime import Context

    return Context(attempt=attempt, final_attempt=final, deadline=time.time() + 600)


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


class MemoryFirestore:
    """The few `google.cloud.firestore.Client` calls the API's key store makes: `collection(name).document(id)`
    with `get()`, `create()`, `set()` and `update()`, in a dict of collections of documents."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[str, dict[str, Any]]] = {}

    def collection(self, name: str) -> MemoryCollection:
        return MemoryCollection(self.collections.setdefault(name, {}))


class MemoryCollection:
    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs

    def document(self, doc_id: str) -> MemoryDocument:
        return MemoryDocument(self.docs, doc_id)


class MemorySnapshot:
    def __init__(self, doc_id: str, data: dict[str, Any] | None) -> None:
        self.id = doc_id
        self._data = data

    @property
    def exists(self) -> bool:
        return self._data is not None

    def to_dict(self) -> dict[str, Any] | None:
        return dict(self._data) if self._data is not None else None


class MemoryDocument:
    def __init__(self, docs: dict[str, dict[str, Any]], doc_id: str) -> None:
        self._docs, self.id = docs, doc_id

    def get(self) -> MemorySnapshot:
        return MemorySnapshot(self.id, self._docs.get(self.id))

    def create(self, data: dict[str, Any]) -> None:
        from google.api_core import exceptions

        if self.id in self._docs:
            raise exceptions.AlreadyExists(self.id)  # type: ignore[no-untyped-call]
        self._docs[self.id] = dict(data)

    def set(self, data: dict[str, Any]) -> None:
        self._docs[self.id] = dict(data)

    def update(self, changes: dict[str, Any]) -> None:
        from google.api_core import exceptions

        if self.id not in self._docs:
            raise exceptions.NotFound(self.id)  # type: ignore[no-untyped-call]
        self._docs[self.id].update(changes)


class MemoryApiStore:
    """The API's `ApiStore` (api/store.py) in dicts. `watch` calls `on_change` at once, on the caller's thread,
    with each document scripted in `watch_script[job_id]` (default: the current document), like a snapshot
    listener replaying its changes; `unsubscribed` counts the stopped watches."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.claims: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, dict[str, Any]] = {}
        self.watch_script: dict[str, list[dict[str, Any] | None]] = {}
        self.unsubscribed = 0

    def job(self, job_id: str) -> dict[str, Any] | None:
        doc = self.docs.get(job_id)
        return dict(doc) if doc is not None else None

    def jobs(
        self, producer: str, status: str | None, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        docs = [
            d
            for d in self.docs.values()
            if (d.get("request") or {}).get("producer") == producer and (status is None or d.get("status") == status)
        ]
        docs.sort(key=lambda d: d["created_at"], reverse=True)
        if after is not None:
            ids = [d["job_id"] for d in docs]
            docs = docs[ids.index(after) + 1 :]
        return docs[:limit], len(docs) > limit

    def watch(self, job_id: str, on_change: Any) -> Any:
        for doc in self.watch_script.get(job_id, [self.job(job_id)]):
            on_change(doc)

        def unsubscribe() -> None:
            self.unsubscribed += 1

        return unsubscribe

    def claim(self, job_id: str, producer: str, file_name: str | None) -> None:
        from datetime import UTC, datetime

        self.claims[job_id] = {"producer": producer, "file_name": file_name, "created_at": datetime.now(UTC)}

    def claim_of(self, job_id: str) -> dict[str, Any] | None:
        claim = self.claims.get(job_id)
        return dict(claim) if claim is not None else None

    def reserve(self, scope: str, record: dict[str, Any]) -> dict[str, Any] | None:
        if scope in self.idempotency:
            return dict(self.idempotency[scope])
        self.idempotency[scope] = dict(record)
        return None

    def mark_published(self, scope: str) -> None:
        self.idempotency[scope]["published"] = True


class MemoryObjects:
    """The API's `ObjectStore` (api/objects.py): objects are `StoredObject`s by URI; signing records its
    arguments and answers a recognisable fake URL; `delete_prefix` deletes by plain URI prefix, as GCS lists."""

    def __init__(self) -> None:
        self.objects: dict[str, Any] = {}  # uri -> api.objects.StoredObject
        self.signed_puts: list[tuple[str, dict[str, str], int]] = []
        self.signed_gets: list[tuple[str, int, str | None]] = []
        self.deleted_prefixes: list[str] = []

    def add(self, uri: str, size: int = 1000, content_type: str | None = "audio/wav", **metadata: str) -> None:
        from api.objects import StoredObject

        self.objects[uri] = StoredObject(uri, size, "1700000000000000", content_type, dict(metadata))

    def stat(self, uri: str) -> Any:
        return self.objects.get(uri)

    def sign_put(self, uri: str, headers: Mapping[str, str], ttl_s: int) -> str:
        self.signed_puts.append((uri, dict(headers), ttl_s))
        return f"https://signed.example/put/{uri.removeprefix('gs://')}"

    def sign_get(self, uri: str, ttl_s: int, download_name: str | None = None) -> str:
        self.signed_gets.append((uri, ttl_s, download_name))
        return f"https://signed.example/get/{uri.removeprefix('gs://')}"

    def delete(self, uri: str) -> bool:
        return self.objects.pop(uri, None) is not None

    def delete_prefix(self, uri_prefix: str) -> list[str]:
        self.deleted_prefixes.append(uri_prefix)
        gone = sorted(uri for uri in self.objects if uri.startswith(uri_prefix))
        for uri in gone:
            del self.objects[uri]
        return gone


class MemoryLedger:
    """notification's DeliveryLedger in memory."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], int | None] = {}

    def delivered(self, event_id: str, channel: str) -> Any:
        from notification.ledger import PastDelivery

        key = (event_id, channel)
        return PastDelivery(self.records[key]) if key in self.records else None

    def record(self, event_id: str, channel: str, job_id: str, status_code: int | None) -> None:
        self.records[(event_id, channel)] = status_code


class FakeClock:
    """A clock (`time.time`) that moves only when a test moves `now` or when its `sleep` is called; each sleep is
    recorded. A sleep of no time at all is a bug of the caller (a busy loop), so it fails the test."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, f"slept {seconds} s"
        self.sleeps.append(seconds)
        self.now += seconds


TWO_SPEAKERS = (Turn(0.0, 1.5, "spk_a"), Turn(1.5, 3.0, "spk_b"))
SCRIPTED_TIMINGS: Mapping[str, float] = {"inference_s": 0.5, "rtf": 0.1}

TurnsScript = Sequence[Turn] | Callable[[Path], Sequence[Turn]]
TimingsScript = Mapping[str, float] | Callable[[Path], Mapping[str, float]]


class ScriptedEngine:
    """The diarization `Engine` port without a model: answers `turns` (or `turns(audio_path)`) with `timings` (or
    `timings(audio_path)`), reports each of `progress_steps` to the progress hook first, and records every call as
    (the audio's bytes, the options)."""

    def __init__(
        self,
        turns: TurnsScript = TWO_SPEAKERS,
        *,
        name: str = "scripted",
        model: str = "test-model",
        device: str = "cpu",
        timings: TimingsScript = SCRIPTED_TIMINGS,
        exclusive: Sequence[Turn] = (),
        progress_steps: Sequence[Progress] = (),
    ) -> None:
        self.name, self.model, self.device = name, model, device
        self.turns, self.timings, self.exclusive = turns, timings, tuple(exclusive)
        self.progress_steps = tuple(progress_steps)
        self.calls: list[tuple[bytes, DiarizationOptions]] = []

    def diarize(self, audio_path: Path, options: DiarizationOptions, progress: Any = None) -> DiarizationResult:
        from diarization.engines.base import DiarizationResult

        self.calls.append((audio_path.read_bytes(), options))
        if progress is not None:
            for step in self.progress_steps:
                progress(step)
        turns = self.turns(audio_path) if callable(self.turns) else self.turns
        timings = self.timings(audio_path) if callable(self.timings) else self.timings
        return DiarizationResult(
            tuple(turns), self.name, self.model, self.device, dict(timings), exclusive_turns=self.exclusive
        )


VERTEX_JOB = "projects/1/locations/europe-west4/customJobs/42"


class FakeJobClient:
    """Vertex AI's `JobServiceClient`: creates every job (named `VERTEX_JOB`); each look at a job shows the next of
    `states` (the last one stays); a state that is an exception is raised instead."""

    def __init__(self, states: tuple[Any, ...] = ("JOB_STATE_RUNNING",)) -> None:
        self.requests: list[Any] = []
        self.states = list(states)
        self.gets: list[str] = []
        self.cancels: list[str] = []

    def create_custom_job(self, *, request: Any, timeout: float) -> Any:
        assert timeout > 0  # the client's default is no timeout at all
        self.requests.append(request)
        return SimpleNamespace(name=VERTEX_JOB)

    def get_custom_job(self, *, name: str, timeout: float) -> Any:
        self.gets.append(name)
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(state, Exception):
            raise state
        return state if not isinstance(state, str) else SimpleNamespace(name=name, state=state, start_time=None)

    def cancel_custom_job(self, *, name: str, timeout: float) -> Any:
        self.cancels.append(name)
        return None
