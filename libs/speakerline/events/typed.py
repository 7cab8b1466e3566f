"""Typed events: one class per event schema and major version, the only place an event type string is written.

An `Event` is a CloudEvent's envelope (id, source, time, subject, trace) plus its data as the generated pydantic
model of its schema (`models.py`). Handlers take and return these; the runtime converts them to and from the wire
(`wire.py`), validating against the JSON Schema both ways, so a typed event that reaches a handler or leaves a
process always matches its schema.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Self, TypeVar, get_args

from pydantic import BaseModel, RootModel
from pydantic_core import to_jsonable_python

from speakerline.events import models, wire

D = TypeVar("D", bound=BaseModel)

# Namespace of derived event ids (uuid5): fixed forever, or redelivered inputs would stop deduplicating.
_DERIVED_ID_NAMESPACE = uuid.UUID("6f1d6a52-7b1e-4c8e-9a55-2f0f3d9b8e11")


def to_json(model: BaseModel) -> dict[str, Any]:
    """A data model as JSON: an optional field that is unset or None is left out (the schemas' optional fields
    are absent, never null); a required field is always written, even when None (`eta_s: null`); extra fields a
    newer minor version added are kept, so an event passed on loses nothing."""
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if not info.is_required() and (value is None or (name not in model.model_fields_set and value == info.default)):
            continue
        out[info.alias or name] = _jsonable(value)
    out.update({k: _jsonable(v) for k, v in (model.model_extra or {}).items()})
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, RootModel):  # a constrained list item or value the generator wrapped (`root`)
        return _jsonable(value.root)
    if isinstance(value, BaseModel):
        return to_json(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return to_jsonable_python(value)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Event(Generic[D]):
    """A CloudEvent with typed data. Subclasses set `TYPE` (the CloudEvent type) and `DATA` (the data model)."""

    TYPE: ClassVar[str]
    DATA: ClassVar[type[BaseModel]]

    data: D
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    time: datetime = field(default_factory=_now)
    subject: str | None = None
    traceparent: str | None = None

    @property
    def type(self) -> str:
        return self.TYPE

    @property
    def job_id(self) -> str | None:
        job_id = getattr(self.data, "job_id", None)
        return str(job_id) if job_id else None

    @classmethod
    def new(cls, data: D, *, source: str, cause: Event[Any] | None = None, event_id: str | None = None) -> Self:
        """A new event; `cause` is the event being handled, whose trace the new one continues: as a child of the
        span handling it where one is recorded (`speakerline.telemetry`), else with the cause's trace id."""
        job_id = getattr(data, "job_id", None)
        traceparent = wire.current_traceparent()
        if traceparent is None:
            parent = wire.trace_ids_of(cause.traceparent) if cause is not None else None
            traceparent = wire.new_traceparent(parent[0] if parent else None)
        return cls(
            data=data,
            id=event_id or str(uuid.uuid4()),
            source=source,
            subject=f"jobs/{job_id}" if job_id else None,
            traceparent=traceparent,
        )

    @classmethod
    def caused_by(cls, cause: Event[Any], data: D, *, source: str, discriminator: str = "") -> Self:
        """The event that handling `cause` produces, with an id derived from the cause's: a redelivered input yields
        the very same output event, which consumers then deduplicate like any other repeat. `discriminator` tells
        apart several events of one type produced from one cause (a channel, an attempt)."""
        event_id = str(uuid.uuid5(_DERIVED_ID_NAMESPACE, f"{cause.id}|{cls.TYPE}|{discriminator}"))
        return cls.new(data, source=source, cause=cause, event_id=event_id)

    def payload(self) -> dict[str, Any]:
        """The data as JSON, as its schema wants it: see `to_json`."""
        return to_json(self.data)

    def to_cloudevent(self) -> wire.CloudEvent:
        """The wire form, validated against the schema (an invalid event never leaves the process)."""
        return wire.build_cloudevent(
            self.TYPE,
            self.payload(),
            source=self.source,
            event_id=self.id,
            time=self.time,
            subject=self.subject,
            traceparent=self.traceparent,
        )

    @classmethod
    def from_cloudevent(cls, event: wire.CloudEvent) -> Self:
        """The typed form of a received, already validated, CloudEvent of this type."""
        time = event.get("time")
        return cls(
            data=cls.DATA.model_validate(wire.data_of(event)),  # type: ignore[arg-type]
            id=str(event["id"]),
            source=str(event["source"]),
            # `time` is optional in CloudEvents: an event without one (a producer's) is stamped on arrival.
            time=datetime.fromisoformat(str(time).replace("Z", "+00:00")) if time else _now(),
            subject=event.get("subject"),
            traceparent=event.get("traceparent"),
        )


# --- the speakerline events -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AudioUploaded(Event[models.AudioUploadedV1Data]):
    TYPE: ClassVar[str] = "io.speakerline.audio.uploaded.v1"
    DATA: ClassVar[type[BaseModel]] = models.AudioUploadedV1Data


@dataclass(frozen=True, kw_only=True)
class AudioIngested(Event[models.AudioIngestedV1Data]):
    TYPE: ClassVar[str] = "io.speakerline.audio.ingested.v1"
    DATA: ClassVar[type[BaseModel]] = models.AudioIngestedV1Data


@dataclass(frozen=True, kw_only=True)
class DiarizationStarted(Event[models.DiarizationStartedV1Data]):
    TYPE: ClassVar[str] = "io.speakerline.diarization.started.v1"
    DATA: ClassVar[type[BaseModel]] = models.DiarizationStartedV1Data


@dataclass(frozen=True, kw_only=True)
class DiarizationProgress(Event[models.DiarizationProgressV1Data]):
    TYPE: ClassVar[str] = "io.speakerline.diarization.progress.v1"
    DATA: ClassVar[type[BaseModel]] = models.DiarizationProgressV1Data


@dataclass(frozen=True, kw_only=True)
class DiarizationCompleted(Event[models.DiarizationCompletedV1Data]):
    TYPE: ClassVar[str] = "io.speakerline.diarization.completed.v1"
    DATA: ClassVar[type[BaseModel]] = models.DiarizationCompletedV1Data


@dataclass(frozen=True, kw_only=True)
class JobCompleted(Event[models.JobCompletedV1Data]):
    TYPE: ClassVar[str] = "io.speakerline.job.completed.v1"
    DATA: ClassVar[type[BaseModel]] = models.JobCompletedV1Data


@dataclass(frozen=True, kw_only=True)
class JobFailed(Event[models.JobFailedV1Data]):
    TYPE: ClassVar[str] = "io.speakerline.job.failed.v1"
    DATA: ClassVar[type[BaseModel]] = models.JobFailedV1Data


@dataclass(frozen=True, kw_only=True)
class JobRejected(Event[models.JobRejectedV1Data]):
    TYPE: ClassVar[str] = "io.speakerline.job.rejected.v1"
    DATA: ClassVar[type[BaseModel]] = models.JobRejectedV1Data


@dataclass(frozen=True, kw_only=True)
class NotificationDelivered(Event[models.NotificationDeliveredV1Data]):
    TYPE: ClassVar[str] = "io.speakerline.notification.delivered.v1"
    DATA: ClassVar[type[BaseModel]] = models.NotificationDeliveredV1Data


@dataclass(frozen=True, kw_only=True)
class NotificationFailed(Event[models.NotificationFailedV1Data]):
    TYPE: ClassVar[str] = "io.speakerline.notification.failed.v1"
    DATA: ClassVar[type[BaseModel]] = models.NotificationFailedV1Data


@dataclass(frozen=True, kw_only=True)
class JobDeleted(Event[models.JobDeletedV1Data]):
    TYPE: ClassVar[str] = "io.speakerline.job.deleted.v1"
    DATA: ClassVar[type[BaseModel]] = models.JobDeletedV1Data


AnyEvent = (
    AudioUploaded
    | AudioIngested
    | DiarizationStarted
    | DiarizationProgress
    | DiarizationCompleted
    | JobCompleted
    | JobFailed
    | JobRejected
    | JobDeleted
    | NotificationDelivered
    | NotificationFailed
)

# Every event class, by CloudEvent type (the union above is the one list of them).
EVENT_CLASSES: dict[str, type[Event[Any]]] = {cls.TYPE: cls for cls in get_args(AnyEvent)}


def typed(event: wire.CloudEvent) -> AnyEvent:
    """The typed form of a received, validated CloudEvent (InvalidEvent for a type this build has no class for)."""
    cls = EVENT_CLASSES.get(str(event["type"]))
    if cls is None:
        wire.catalog().get(str(event["type"]))  # raises with the reason (unknown type or major version)
        raise wire.InvalidEvent("unknown_event_type", f"{event['type']!r} has a schema but no event class.")
    result: AnyEvent = cls.from_cloudevent(event)  # type: ignore[assignment]
    return result
