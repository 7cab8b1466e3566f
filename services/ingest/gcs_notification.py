"""Adapter: a Cloud Storage OBJECT_FINALIZE notification (Pub/Sub, JSON_API_V1) → a typed `ObjectFinalized`.

GCS notifications are not CloudEvents. This decoder turns one into `ObjectFinalized`, the event Eventarc delivers
for the same thing (`google.cloud.storage.object.v1.finalized`), whose data is the object resource. Anything else
on the notification topic is refused with a reason, which sends it to the dead-letter topic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from speakerline.events import Event, InvalidEvent


class StorageObject(BaseModel):
    """The fields of a Cloud Storage object resource (JSON API names) that ingest reads; the rest is kept."""

    # GCS writes int64 values as decimal strings; a generation given as a number is the same generation.
    model_config = ConfigDict(extra="allow", frozen=True, coerce_numbers_to_str=True)

    bucket: str
    name: str
    generation: str
    size: int | None = None
    # camelCase: the resource's own field names
    contentType: str | None = None
    md5Hash: str | None = None
    updated: str | None = None
    #: custom metadata set by the uploader (x-goog-meta-<key>)
    metadata: dict[str, str] | None = None


@dataclass(frozen=True, kw_only=True)
class ObjectFinalized(Event[StorageObject]):
    """An object was created (or overwritten) in a bucket. Eventarc's type, not speakerline's: it is only ever
    decoded from a notification, never turned into a CloudEvent nor published, so it is not in the catalog."""

    TYPE: ClassVar[str] = "google.cloud.storage.object.v1.finalized"
    DATA: ClassVar[type[BaseModel]] = StorageObject


def _time(value: str | None) -> datetime | None:
    """A timestamp of the notification; a missing or unreadable one is no reason to refuse the upload."""
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def decode(data: bytes, attributes: Mapping[str, str]) -> ObjectFinalized:
    if attributes.get("payloadFormat") != "JSON_API_V1":
        raise InvalidEvent("not_a_gcs_notification", "Expected a GCS notification with payloadFormat JSON_API_V1.")
    if attributes.get("eventType") != "OBJECT_FINALIZE":
        raise InvalidEvent("unexpected_gcs_event", f"GCS event {attributes.get('eventType')!r} is not OBJECT_FINALIZE.")
    try:
        resource = json.loads(data)
    except ValueError as exc:
        raise InvalidEvent("malformed_data", f"GCS notification body is not JSON: {exc}") from exc
    if not isinstance(resource, dict) or not all(k in resource for k in ("bucket", "name", "generation")):
        raise InvalidEvent("malformed_data", "GCS notification body lacks bucket, name or generation.")
    try:
        obj = StorageObject.model_validate(resource)
    except ValidationError as exc:
        raise InvalidEvent("malformed_data", f"GCS notification body is not an object resource: {exc}") from exc
    return ObjectFinalized(
        data=obj,
        # One id per object generation: a repeated notification is the same event.
        id=f"{obj.bucket}/{obj.name}#{obj.generation}",
        source=f"//storage.googleapis.com/projects/_/buckets/{obj.bucket}",
        subject=f"objects/{obj.name}",
        time=_time(attributes.get("eventTime")) or _time(obj.updated) or datetime.now(UTC),
    )
