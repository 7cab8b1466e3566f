"""Services as the push HTTP function behind Pub/Sub push subscriptions (Cloud Run style).

The emulator pushes to a real functions-framework server running `speakerline.push:http_entrypoint` for the
service named by SPEAKERLINE_SERVICE, exactly as the images serve it; the function goes through the same runtime
as the pull worker.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import google.cloud.pubsub_v1 as pubsub_v1
import pytest
from google.cloud import firestore

from speakerline import events, push, topology
from speakerline.pubsub import PubSubPublisher
from speakerline_tools import jobstore
from speakerline_tools.stack import StackConfig

from .helpers import pull, wait_for

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def functions_framework_server(emulators: StackConfig, service: str, log_path: Path) -> Iterator[int]:
    port = _free_port()
    ff = str(Path(sys.executable).with_name("functions-framework"))
    source = str(Path(push.__file__))
    argv = [ff, "--target", "http_entrypoint", "--source", source,
            "--signature-type", "http", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    env = {**os.environ, **emulators.emulator_env(), "SPEAKERLINE_SERVICE": service}
    with log_path.open("w") as log:
        server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _listening(port), timeout_s=60)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=15)


def _push_subscription(project: str, name: str, topic: str, port: int, **extra: object) -> None:
    subscriber = pubsub_v1.SubscriberClient()
    request = {
        "name": subscriber.subscription_path(project, name),
        "topic": f"projects/{project}/topics/{topic}",
        # The topic in the endpoint path tells the runtime which of the service's subscriptions this is.
        "push_config": {"push_endpoint": f"http://127.0.0.1:{port}/projects/{project}/topics/{topic}"},
        **extra,
    }
    subscriber.create_subscription(request=request)


def test_projector_behind_a_push_subscription(emulators: StackConfig, tmp_path: Path, example, unique) -> None:  # type: ignore[no-untyped-def]
    log_path = tmp_path / "ff.log"
    with functions_framework_server(emulators, "projector", log_path) as port:
        topic = "audio-uploaded"
        _push_subscription(emulators.project, f"push-{unique}", topic, port)
        data = example("audio.uploaded")
        data["job_id"] = f"push-{uuid.uuid4().hex[:12]}"
        event = events.AudioUploaded.new(events.models.AudioUploadedV1Data.model_validate(data), source="//tests/push")
        publisher = PubSubPublisher(emulators.project, topology.load())
        publisher.publish([event])

        db = firestore.Client(project=emulators.project)
        job = wait_for(lambda: jobstore.get_job(db, data["job_id"]), timeout_s=30)
        # (When the pipeline's services also run, ingest may already have moved the job on: don't pin status.)
        assert job["stages"]["received_at"] is not None
        assert job["request"]["input"]["uri"] == data["request"]["input"]["uri"]

        def logged() -> list[dict]:  # type: ignore[type-arg]
            lines = log_path.read_text().splitlines()
            return [json.loads(line) for line in lines if line.startswith("{") and event.id in line]

        assert wait_for(logged, timeout_s=10)[0]["job_id"] == data["job_id"]

        # A poison message pushed to the function is dead-lettered by it and answered 2xx (no redelivery loop).
        marker = uuid.uuid4().hex
        publisher.publish_raw(topic, b"not an event", {"marker": marker})
        sub = topology.load().subscriptions["projector-audio-uploaded"]

        def dead() -> list:  # type: ignore[type-arg]
            found = pull(emulators.project, sub.dead_letter_subscription, 1, timeout_s=2)
            return [m for m in found if m.attributes.get("marker") == marker]

        assert wait_for(dead, timeout_s=30)[0].attributes["speakerline-dead-letter-reason"] == "not_a_cloudevent"
        # The dead letter is published before the refusal is logged: wait for the line rather than read once.
        assert wait_for(lambda: "message refused" in log_path.read_text(), timeout_s=10)


def test_http_push_retries_then_fails_the_job_and_dead_letters(emulators: StackConfig, tmp_path: Path, example,
                                                               unique: str) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """A failing message is answered 5xx, redelivered with backoff, then dead-lettered; on the last attempt
    (production push bodies carry `deliveryAttempt`; the emulator's do not, so that request is sent here as
    production would send it) the function publishes job.failed."""
    import base64

    import requests

    project = emulators.project
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    dead_topic, outcomes = f"push-dead-{unique}", f"push-outcomes-{unique}"
    publisher.create_topic(request={"name": publisher.topic_path(project, dead_topic)})
    for name, topic in ((dead_topic, dead_topic), (outcomes, "job-outcomes")):
        subscriber.create_subscription(
            request={"name": subscriber.subscription_path(project, name), "topic": publisher.topic_path(project, topic)}
        )
    data = example("diarization.completed")
    data["job_id"] = f"push-fail-{unique}"
    data["result"]["turns_uri"] = f"gs://speakerline-work/jobs/{unique}/missing.json"  # nothing there
    event = events.DiarizationCompleted.new(
        events.models.DiarizationCompletedV1Data.model_validate(data), source="//tests/push"
    )
    body, attributes = events.to_pubsub(event)

    log_path = tmp_path / "ff.log"
    with functions_framework_server(emulators, "postprocess", log_path) as port:
        _push_subscription(
            project, f"push-pp-{unique}", "diarization", port,
            dead_letter_policy={"dead_letter_topic": publisher.topic_path(project, dead_topic),
                                "max_delivery_attempts": 5},
            retry_policy={"minimum_backoff": {"seconds": 0}, "maximum_backoff": {"seconds": 1}},
        )  # fmt: skip
        PubSubPublisher(project, topology.load()).publish([event])
        dead = wait_for(lambda: pull(project, dead_topic, 1, timeout_s=2), timeout_s=90)
        assert dead[0].attributes["ce-id"] == event.id
        assert dead[0].attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
        assert log_path.read_text().count('"handler failed"') >= 5

        envelope = {
            "message": {"data": base64.b64encode(body).decode(), "attributes": attributes, "messageId": "m-5"},
            "subscription": f"projects/{project}/subscriptions/postprocess-diarization",
            "deliveryAttempt": 5,
        }
        answer = requests.post(f"http://127.0.0.1:{port}/", json=envelope, timeout=30)
        assert answer.status_code == 500  # still failing: Pub/Sub will dead-letter it

        def failed() -> list:  # type: ignore[type-arg]
            found = pull(project, outcomes, 10, timeout_s=2)
            return [m for m in found if m.attributes.get("ce-jobid") == data["job_id"]]

        job_failed_messages = wait_for(failed, timeout_s=30)
        not_a_push = requests.post(f"http://127.0.0.1:{port}/", json={"hello": "world"}, timeout=10)
        assert not_a_push.status_code == 400
    job_failed = events.parse(job_failed_messages[0])
    assert isinstance(job_failed, events.JobFailed)
    error = job_failed.data.error
    assert (error.stage, error.code, error.retriable) == ("postprocess", "postprocess_error", True)
