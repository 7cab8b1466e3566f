"""Events of one job, built from the schema examples, for the projector's unit and integration tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from projector.projection import project
from speakerline import events
from speakerline.events import Event
from tests.conftest import example_data  # re-exported: the projector tests build their events from it

T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)

# Offsets (seconds after T0) of a normal job's events, as in the examples.
HAPPY = ("audio.uploaded", "audio.ingested", "diarization.started", "diarization.completed", "job.completed")
OFFSETS = {
    "audio.uploaded": 0,
    "audio.ingested": 7,
    "diarization.started": 21,
    "diarization.progress": 24,
    "diarization.completed": 28,
    "job.completed": 35,
    "job.rejected": 14,
    "job.failed": 42,
    "notification.delivered": 49,
    "notification.failed": 56,
    "job.deleted": 60,
}


# Event class by event name ("audio.uploaded"), so that tests name events the way the schema folders do.
CLASSES: dict[str, type[Event[Any]]] = {events.event_name(t): cls for t, cls in events.EVENT_CLASSES.items()}


def at(seconds: float) -> datetime:
    """`seconds` after T0, the first event's time."""
    return T0 + timedelta(seconds=seconds)


def typed(
    name: str, data: dict[str, Any], *, time: datetime, source: str = "//speakerline/tests", event_id: str | None = None
) -> Event[Any]:
    """The typed event `name` with this JSON data, checked against its JSON Schema as if it had been received."""
    cls = CLASSES[name]
    fields: dict[str, Any] = {"id": event_id} if event_id is not None else {}
    event = cls(data=cls.DATA.model_validate(data), source=source, time=time, **fields)
    event.to_cloudevent()  # raises InvalidEvent if the data does not match the schema
    return event


def make(
    name: str, job_id: str, at: float | datetime | None = None, *, t0: datetime = T0, **changes: Any
) -> Event[Any]:
    """An event of type `name` for `job_id` built from the schema example; `at` is seconds after t0 or a time."""
    data = example_data(name)
    data["job_id"] = job_id
    data.update(changes)
    offset = OFFSETS[name] if at is None else at
    time = offset if isinstance(offset, datetime) else t0 + timedelta(seconds=offset)
    return typed(name, data, time=time)


def full_job(job_id: str, *, t0: datetime = T0) -> list[Event[Any]]:
    return [make(n, job_id, t0=t0) for n in (*HAPPY, "notification.delivered", "notification.failed")]


def fold(evs: list[Event[Any]], job: dict[str, Any] | None = None) -> dict[str, Any]:
    for event in evs:
        job = project(job, event)
    assert job is not None
    return job
