"""Adapter: a Cloud Storage OBJECT_FINALIZE notification (Pub/Sub, JSON_API_V1) → the CloudEvent Eventarc uses.

GCS notifications are not CloudEvents. This decoder turns one into `google.cloud.storage.object.v1.finalized`
(the type Eventarc delivers for the same thing), whose data is the object resource. Anything else on the
notification topic is refused with a reason, which sends it to the dead-letter topic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from speakerline.events import CloudEvent, InvalidEvent

OBJECT_FINALIZED = "google.cloud.storage.object.v1.finalized"


def decode(data: bytes, attributes: Mapping[str, str]) -> CloudEvent:
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
    bucket, name, generation = resource["bucket"], resource["name"], str(resource["generation"])
    return CloudEvent(
        {
            "type": OBJECT_FINALIZED,
            "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
            "subject": f"objects/{name}",
            "id": f"{bucket}/{name}#{generation}",
            "time": attributes.get("eventTime") or str(resource.get("updated") or ""),
            "datacontenttype": "application/json",
        },
        resource,
    )
