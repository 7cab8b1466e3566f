"""speakerline's event contract, typed: what services and consumers import.

Every message on speakerline's topics is a CloudEvent whose type is `io.speakerline.<name>.v<major>`; its data
matches `schemas/events/<name>/v<major>.schema.json`. This package gives each one a class (`JobCompleted`,
`JobFailed`, ...; `typed.py`) whose `data` is the generated pydantic model of its schema (`models.py`).

A consumer of `job-outcomes` needs one call::

    from speakerline import events

    def callback(message):                      # a google-cloud-pubsub subscriber callback
        event = events.parse(message)           # verified CloudEvent + schema, or events.InvalidEvent
        if isinstance(event, events.JobCompleted):
            print(event.data.job_id, event.data.result.output_uri)
        message.ack()

`parse` takes a received Pub/Sub message (anything with `.data` and `.attributes`); `parse_pubsub(data,
attributes)` and `parse_json(body)` (a webhook's structured-mode body) do the same for the raw parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from speakerline.events import models
from speakerline.events.builders import gave_up, job_error, job_failed, job_rejected
from speakerline.events.typed import (
    EVENT_CLASSES,
    AnyEvent,
    AudioIngested,
    AudioUploaded,
    DiarizationCompleted,
    DiarizationProgress,
    DiarizationStarted,
    Event,
    JobCompleted,
    JobDeleted,
    JobFailed,
    JobRejected,
    NotificationDelivered,
    NotificationFailed,
    to_json,
    typed,
)
from speakerline.events.wire import (
    SCHEMA_BASE_URI,
    CloudEvent,
    InvalidEvent,
    catalog,
    event_name,
    from_pubsub,
    to_structured_json,
    trace_ids,
)

__all__ = [
    "EVENT_CLASSES",
    "SCHEMA_BASE_URI",
    "AnyEvent",
    "AudioIngested",
    "AudioUploaded",
    "CloudEvent",
    "DiarizationCompleted",
    "DiarizationProgress",
    "DiarizationStarted",
    "Event",
    "InvalidEvent",
    "JobCompleted",
    "JobDeleted",
    "JobFailed",
    "JobRejected",
    "NotificationDelivered",
    "NotificationFailed",
    "catalog",
    "event_name",
    "from_pubsub",
    "gave_up",
    "job_error",
    "job_failed",
    "job_rejected",
    "models",
    "parse",
    "parse_json",
    "parse_pubsub",
    "to_json",
    "to_pubsub",
    "to_structured_json",
    "trace_ids",
]

STRUCTURED = {"content-type": "application/cloudevents+json"}


def parse_pubsub(data: bytes, attributes: Mapping[str, str]) -> AnyEvent:
    """The typed event of a Pub/Sub message's body and attributes (binary or structured content mode)."""
    return typed(from_pubsub(data, attributes))


def parse(message: Any) -> AnyEvent:
    """The typed event of a received Pub/Sub message (`message.data`, `message.attributes`), after verifying that
    it is a CloudEvent of a known type and major version whose data matches the schema; InvalidEvent otherwise,
    with a machine-readable `code` (`not_a_cloudevent`, `unknown_event_type`, `schema_violation`, ...)."""
    return parse_pubsub(bytes(message.data), dict(message.attributes))


def parse_json(body: bytes) -> AnyEvent:
    """The typed event of a structured-mode CloudEvent (application/cloudevents+json), e.g. a webhook body."""
    return parse_pubsub(body, STRUCTURED)


def to_pubsub(event: Event[Any] | CloudEvent) -> tuple[bytes, dict[str, str]]:
    """(message data, message attributes) in binary content mode, validated before anything leaves."""
    from speakerline.events import wire

    return wire.to_pubsub(event.to_cloudevent() if isinstance(event, Event) else event)
