"""`speakerline dlq list|replay` against the emulator: listing consumes nothing, replay is dry unless asked,
republishes to the original topic, skips never-valid messages, and leaves an audit record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import google.cloud.pubsub_v1 as pubsub_v1
import pytest

from speakerline import events, topology
from speakerline.pubsub import PubSubPublisher
from speakerline_tools.stack import StackConfig

from .helpers import pull

pytestmark = pytest.mark.integration


def _cli(cfg: StackConfig, *args: str) -> subprocess.CompletedProcess[str]:
    cli = str(Path(sys.executable).with_name("speakerline"))
    env = {**os.environ, **cfg.emulator_env()}
    return subprocess.run([cli, "dlq", *args], env=env, capture_output=True, text=True, timeout=120)


def test_list_and_replay(emulators: StackConfig, tmp_path: Path, example, unique: str) -> None:  # type: ignore[no-untyped-def]
    topo = topology.load()
    sub = topo.subscriptions["postprocess-diarization"]
    publisher = PubSubPublisher(emulators.project, topo)
    data = example("diarization.started")
    data["job_id"] = f"dlq-{unique}"
    event = events.DiarizationStarted.new(
        events.models.DiarizationStartedV1Data.model_validate(data), source="//tests/dlq"
    )
    body, attributes = events.to_pubsub(event)
    # As Pub/Sub moves a message after its last failed delivery, and as the runtime forwards a poison one.
    publisher.publish_raw(sub.dead_letter_topic, body, {
        **attributes, "CloudPubSubDeadLetterSourceSubscription": sub.name,
        "CloudPubSubDeadLetterSourceDeliveryCount": "5"})  # fmt: skip
    marker = uuid.uuid4().hex
    publisher.publish_raw(sub.dead_letter_topic, b"garbage", {
        "speakerline-dead-letter-reason": "not_a_cloudevent", "marker": marker})  # fmt: skip
    subscriber = pubsub_v1.SubscriberClient()
    probe = f"dlq-probe-{unique}"
    subscriber.create_subscription(request={"name": subscriber.subscription_path(emulators.project, probe),
                                            "topic": f"projects/{emulators.project}/topics/{sub.topic}"})  # fmt: skip
    job = ["--subscription", sub.name, "--job", data["job_id"]]

    listed = _cli(emulators, "list", *job, "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["reason"], row["event_id"], row["deliveries"]) == ("retries_exhausted", event.id, "5")
    assert len(json.loads(_cli(emulators, "list", *job, "--json").stdout)) == 1  # listing consumed nothing

    dry = json.loads(_cli(emulators, "replay", *job).stdout)
    assert dry["executed"] is False and len(dry["replayed"]) == 1
    assert pull(emulators.project, probe, 1, timeout_s=3) == []

    audit = tmp_path / "audit"
    done = _cli(emulators, "replay", *job, "--execute", "--operator", "ops@test", "--audit-dir", str(audit))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (message,) = pull(emulators.project, probe, 1)
    assert message.attributes["ce-id"] == event.id and message.data == body
    assert message.attributes["speakerline-replay-by"] == "ops@test"
    assert message.attributes["speakerline-replay-id"] == report["replay_id"]
    assert not any(k.startswith("CloudPubSubDeadLetterSource") for k in message.attributes)
    (audit_file,) = audit.glob(f"*-{report['replay_id']}.json")
    assert json.loads(audit_file.read_text())["replayed"][0]["event_id"] == event.id
    assert json.loads(_cli(emulators, "list", *job, "--json").stdout) == []  # acknowledged after the republish

    poison = ["--subscription", sub.name, "--reason", "not_a_cloudevent"]
    skipped = json.loads(_cli(emulators, "replay", *poison, "--execute", "--audit-dir", str(audit)).stdout)
    assert skipped["replayed"] == [] and skipped["skipped"]
    assert json.loads(_cli(emulators, "list", *poison, "--json").stdout)  # still there for inspection
