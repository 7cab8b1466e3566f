"""The wire side of the event contract: the schema catalog, validation, and the Pub/Sub mapping of CloudEvents.

Every event type is `io.speakerline.<name>.v<major>` and its data is validated against
`schemas/events/<name>/v<major>.schema.json` (bundled into this package) both when it is built (refuse to publish
an invalid event) and when it is received. Code above this layer uses the typed events of `typed.py`. On Pub/Sub,
events travel in the binary content mode of the CloudEvents Pub/Sub protocol binding:
`ce-` prefixed message attributes plus a `content-type` attribute, with the event data as the message body. That
is, attribute for attribute, the HTTP binary mode of the cloudevents SDK, which we use for both directions.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs
from cloudevents.conversion import to_binary, to_structured
from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent, from_http

TYPE_PREFIX = "io.speakerline."
SCHEMA_BASE_URI = "https://schemas.speakerline.io/events"
_TYPE_RE = re.compile(r"^io\.speakerline\.(?P<name>[a-z]+(?:\.[a-z]+)+)\.v(?P<major>[1-9][0-9]*)$")
#: The attributes a binary-mode CloudEvent must carry (CloudEvents 1.0 REQUIRED attributes).
_REQUIRED = ("specversion", "id", "source", "type")
_TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")

__all__ = [
    "CloudEvent",
    "InvalidEvent",
    "catalog",
    "data_of",
    "from_pubsub",
    "to_pubsub",
    "to_structured_json",
]


class InvalidEvent(Exception):
    """A message that must never be processed. `code` is machine-readable, `message` is for humans."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class EventSchema:
    name: str  # e.g. "audio.uploaded"
    major: int
    schema: Mapping[str, Any]

    @property
    def type(self) -> str:
        return f"{TYPE_PREFIX}{self.name}.v{self.major}"

    @property
    def dataschema(self) -> str:
        return str(self.schema["$id"])

    @property
    def description(self) -> str:
        return str(self.schema.get("description", ""))


class Catalog:
    """Every event schema bundled from schemas/events/, indexed by CloudEvent type."""

    def __init__(self, schemas: list[EventSchema]) -> None:
        self.by_type = {s.type: s for s in sorted(schemas, key=lambda s: (s.name, s.major))}
        self.names = {s.name for s in schemas}
        # jsonschema-rs (Rust): every event is validated on publish and on receipt, and the pure-Python validator
        # cost 0.1-0.6 ms an event, a tenth of the projector's CPU; this one takes 2-8 us (formats checked too).
        self._validators = {
            t: jsonschema_rs.validator_for(dict(s.schema), validate_formats=True) for t, s in self.by_type.items()
        }

    def __iter__(self) -> Any:
        return iter(self.by_type.values())

    def get(self, event_type: str) -> EventSchema:
        """The schema of `event_type`, or InvalidEvent saying why there is none."""
        schema = self.by_type.get(event_type)
        if schema is not None:
            return schema
        match = _TYPE_RE.match(event_type)
        if match and match["name"] in self.names:
            known = sorted(s.type for s in self.by_type.values() if s.name == match["name"])
            raise InvalidEvent(
                "unknown_major_version",
                f"{event_type} is a major version of {match['name']} this build does not know "
                f"(known: {', '.join(known)}).",
            )
        raise InvalidEvent("unknown_event_type", f"{event_type!r} is not a speakerline event type.")

    def validate(self, event_type: str, data: Any) -> EventSchema:
        schema = self.get(event_type)
        validator = self._validators[event_type]
        if validator.is_valid(data):
            return schema
        errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.instance_path])
        if errors:
            details = "; ".join(
                f"{'/'.join(str(p) for p in e.instance_path) or '(data)'}: {e.message}" for e in errors[:5]
            )
            raise InvalidEvent("schema_violation", f"{event_type} data does not match its schema: {details}")
        return schema


SCHEMAS_BUNDLE = "schemas.json"


def _load_schemas() -> list[EventSchema]:
    """The schemas of schemas/events/, as bundled into this package (`speakerline schemas generate`)."""
    bundle = json.loads((resources.files(__package__) / SCHEMAS_BUNDLE).read_text())
    found: list[EventSchema] = []
    for key, schema in bundle.items():
        name, major = key.rsplit("/v", 1)
        found.append(EventSchema(name, int(major), schema))
    return found


@cache
def catalog() -> Catalog:
    return Catalog(_load_schemas())


def new_traceparent(trace_id: str | None = None) -> str:
    """A W3C traceparent with a new span id, in trace `trace_id` (a new trace when None)."""
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def current_traceparent() -> str | None:
    """The W3C traceparent of the OpenTelemetry span being recorded on this thread (a handler's consumer span:
    `speakerline.telemetry`), or None where nothing is recorded."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not trace.get_current_span().is_recording():
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def trace_ids_of(traceparent: str | None) -> tuple[str, str] | None:
    """(trace id, span id) of a W3C traceparent, if it is a valid one."""
    match = _TRACEPARENT_RE.match(str(traceparent or ""))
    return (match[1], match[2]) if match else None


def trace_ids(event: CloudEvent) -> tuple[str, str] | None:
    """(trace id, span id) of the event's W3C traceparent extension, if it has a valid one."""
    return trace_ids_of(event.get("traceparent"))


def build_cloudevent(
    event_type: str,
    data: Mapping[str, Any],
    *,
    source: str,
    event_id: str,
    time: datetime,
    subject: str | None,
    traceparent: str | None,
) -> CloudEvent:
    """The CloudEvent of a typed event (`typed.Event.to_cloudevent`), its data validated against the schema."""
    schema = catalog().validate(event_type, data)
    attributes: dict[str, Any] = {
        "type": event_type,
        "source": source,
        "id": event_id,
        "time": time.isoformat(),
        "datacontenttype": "application/json",
        "dataschema": schema.dataschema,
    }
    if traceparent:
        attributes["traceparent"] = traceparent
    if subject:
        attributes["subject"] = subject
    if data.get("job_id"):
        attributes["jobid"] = data["job_id"]
    return CloudEvent(attributes, dict(data))


def to_pubsub(event: CloudEvent) -> tuple[bytes, dict[str, str]]:
    """(message data, message attributes) in binary content mode; re-validates before anything leaves."""
    catalog().validate(event["type"], event.get_data())
    headers, body = to_binary(event)
    return body if isinstance(body, bytes) else str(body).encode(), {k: str(v) for k, v in headers.items()}


def from_pubsub(data: bytes, attributes: Mapping[str, str]) -> CloudEvent:
    """Parse and validate a received message; raises InvalidEvent for anything that must not be processed."""
    # Structured mode is accepted too, but a message with neither shape is not a CloudEvent at all.
    binary = "ce-type" in attributes or "ce-specversion" in attributes
    if not binary and (not data.lstrip().startswith(b"{") or b'"specversion"' not in data):
        raise InvalidEvent("not_a_cloudevent", "The message has no ce-* attributes and is not a structured CloudEvent.")
    if binary:
        # The SDK says "Failed to find specversion" whichever one is missing: name it.
        missing = [f"ce-{name}" for name in _REQUIRED if not attributes.get(f"ce-{name}")]
        if missing:
            raise InvalidEvent(
                "not_a_cloudevent", f"The message lacks the required {', '.join(missing)} (or it is empty)."
            )
    try:
        event = from_http(dict(attributes), data)
    except (GenericException, ValueError) as exc:
        raise InvalidEvent("not_a_cloudevent", f"The message is not a valid CloudEvent: {exc}") from exc
    # CloudEvents 1.0: id and source are non-empty strings; an empty id would make every such event a duplicate of
    # the first.
    empty = [name for name in ("id", "source") if not str(event.get(name) or "")]
    if empty:
        raise InvalidEvent("not_a_cloudevent", f"The CloudEvent's {' and '.join(empty)} is empty.")
    if event["specversion"] != "1.0":
        raise InvalidEvent("unsupported_specversion", f"CloudEvents specversion {event['specversion']} is not 1.0.")
    schema = catalog().get(event["type"])
    if event.get("dataschema") not in (None, schema.dataschema):
        raise InvalidEvent(
            "dataschema_mismatch", f"dataschema {event.get('dataschema')} does not match {schema.dataschema}."
        )
    payload = event.get_data()
    if not isinstance(payload, Mapping):
        raise InvalidEvent("malformed_data", f"{event['type']} data is not a JSON object.")
    catalog().validate(event["type"], payload)
    return event


def data_of(event: CloudEvent) -> dict[str, Any]:
    """The event's data as a dict (every speakerline event carries a JSON object)."""
    data = event.get_data()
    if not isinstance(data, dict):
        raise InvalidEvent("malformed_data", f"{event['type']} data is not a JSON object.")
    return data


def to_structured_json(event: CloudEvent) -> bytes:
    """The event in structured JSON mode (application/cloudevents+json), e.g. as a webhook body."""
    _, body = to_structured(event)
    return body if isinstance(body, bytes) else str(body).encode()


def event_name(event_type: str) -> str:
    """'io.speakerline.<name>.v<major>' -> '<name>'."""
    match = _TYPE_RE.match(event_type)
    if not match:
        raise InvalidEvent("unknown_event_type", f"{event_type!r} is not a speakerline event type.")
    return match["name"]
