"""A service as a functions-framework CloudEvent function behind a Pub/Sub push subscription (Cloud Run style).

The emulator pushes to a real functions-framework server running the projector's `entrypoint`; the function
gets the Pub/Sub message wrapped in a CloudEvent and goes through the same runtime as the pull worker.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import google.cloud.pubsub_v1 as pubsub_v1
import pytest
from google.cloud import firestore

from speakerline import events, jobstore, topology
from speakerline.pubsub import PubSubPublisher
from speakerline.stack import StackConfig

from .helpers import pull, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_projector_behind_a_push_subscription(emulators: StackConfig, tmp_path: Path, example) -> None:  # type: ignore[no-untyped-def]
    port, log_path = _free_port(), tmp_path / "ff.log"
    ff = str(Path(sys.executable).with_name("functions-framework"))
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [
                ff,
                "--target",
                "entrypoint",
                "--source",
                str(REPO / "services/projector/main.py"),
                "--signature-type",
                "cloudevent",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env={**os.environ, **emulators.emulator_env()},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: _listening(port), timeout_s=60)
        subscriber = pubsub_v1.SubscriberClient()
        topic = "audio-uploaded"
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(emulators.project, f"push-{uuid.uuid4().hex[:8]}"),
                "topic": f"projects/{emulators.project}/topics/{topic}",
                # The topic in the path tells the runtime which of the service's subscriptions this is.
                "push_config": {
                    "push_endpoint": f"http://127.0.0.1:{port}/projects/{emulators.project}/topics/{topic}"
                },
            }
        )
        data = example("audio.uploaded")
        data["job_id"] = f"push-{uuid.uuid4().hex[:12]}"
        event = events.new_event("io.speakerline.audio.uploaded.v1", data, source="//tests/push")
        publisher = PubSubPublisher(emulators.project, topology.load())
        publisher.publish([event])

        db = firestore.Client(project=emulators.project)
        job = wait_for(lambda: jobstore.get_job(db, data["job_id"]), timeout_s=30)
        assert job["status"] == "RECEIVED"
        logged = wait_for(
            lambda: [
                json.loads(line)
                for line in log_path.read_text().splitlines()
                if line.startswith("{") and event["id"] in line
            ],
            timeout_s=10,
        )
        assert logged[0]["job_id"] == data["job_id"] and logged[0]["service"] == "projector"

        # A poison message pushed to the function is dead-lettered by it, and answered 2xx (no redelivery loop).
        marker = uuid.uuid4().hex
        publisher.publish_raw(topic, b"not an event", {"marker": marker})
        sub = topology.load().subscriptions["projector-audio-uploaded"]
        dead = wait_for(
            lambda: [
                m
                for m in pull(emulators.project, sub.dead_letter_subscription, 1, timeout_s=2)
                if m.attributes.get("marker") == marker
            ],
            timeout_s=30,
        )
        assert dead[0].attributes["speakerline-dead-letter-reason"] == "not_a_cloudevent"
        assert "message refused" in log_path.read_text()
    finally:
        server.terminate()
        server.wait(timeout=15)
