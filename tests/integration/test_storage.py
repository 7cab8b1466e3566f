"""fake-gcs-server publishes OBJECT_FINALIZE notifications of the uploads bucket, as GCS does in production."""

from __future__ import annotations

import json

import google.cloud.pubsub_v1 as pubsub_v1
import google.cloud.storage as storage
import pytest

from speakerline import topology
from speakerline_tools.stack import StackConfig

from .helpers import pull

pytestmark = pytest.mark.integration


def test_upload_to_the_uploads_bucket_publishes_a_finalize_notification(emulators: StackConfig, unique: str) -> None:
    topo = topology.load()
    uploads = topo.buckets["uploads"]
    assert uploads.notification is not None
    subscriber = pubsub_v1.SubscriberClient()
    probe = f"probe-gcs-{unique}"
    subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(emulators.project, probe),
            "topic": f"projects/{emulators.project}/topics/{uploads.notification.topic}",
        }
    )
    blob = storage.Client(project=emulators.project).bucket(uploads.name).blob(f"incoming/{unique}.wav")
    blob.metadata = {"num_speakers": "2"}
    blob.upload_from_string(b"RIFF....WAVE", content_type="audio/wav")

    messages = [m for m in pull(emulators.project, probe, 1) if m.attributes.get("objectId") == blob.name]
    assert messages, "no OBJECT_FINALIZE notification arrived"
    attributes = dict(messages[0].attributes)
    assert attributes["eventType"] == "OBJECT_FINALIZE"
    assert attributes["bucketId"] == uploads.name
    assert attributes["payloadFormat"] == "JSON_API_V1"
    assert attributes["objectGeneration"].isdigit()
    body = json.loads(messages[0].data)
    assert body["name"] == blob.name and body["bucket"] == uploads.name
    assert body["size"] == "12" and body["contentType"] == "audio/wav"
    assert body["metadata"] == {"num_speakers": "2"}


def test_buckets_of_the_topology_exist(emulators: StackConfig) -> None:
    client = storage.Client(project=emulators.project)
    names = {b.name for b in client.list_buckets()}
    assert {b.name for b in topology.load().buckets.values()} <= names
