"""CloudEvents over the real Pub/Sub emulator: round trips, dead-lettering of failures and of poison messages."""

from __future__ import annotations

import json
from pathlib import Path

import google.cloud.pubsub_v1 as pubsub_v1
import pytest

from speakerline import events, runtime, topology
from speakerline_tools import provision
from speakerline.pubsub import PubSubPublisher
from speakerline_tools.stack import StackConfig

from .helpers import one_subscription_topology, pull, wait_for

pytestmark = pytest.mark.integration

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "schemas" / "events").glob("*/v1.example.json"))


def test_every_event_type_round_trips_through_its_topic(emulators: StackConfig, unique: str) -> None:
    topo = topology.load()
    subscriber = pubsub_v1.SubscriberClient()
    probes = {}
    for topic in topo.topics:
        name = f"roundtrip-{topic}-{unique}"
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(emulators.project, name),
                "topic": f"projects/{emulators.project}/topics/{topic}",
            }
        )
        probes[topic] = name
    publisher = PubSubPublisher(emulators.project, topo)
    sent = []
    for example in EXAMPLES:
        doc = json.loads(example.read_text())
        sent.append(events.new_event(doc["type"], doc["data"], source="//speakerline/tests"))
    publisher.publish(sent)

    received: dict[str, tuple[str, events.CloudEvent]] = {}
    for topic, probe in probes.items():
        expected = sum(1 for e in sent if topo.topic_for_event_type(e["type"]) == topic)
        for message in pull(emulators.project, probe, expected):
            event = events.from_pubsub(message.data, dict(message.attributes))
            received[event["id"]] = (topic, event)
    for event in sent:
        assert event["id"] in received, f"{event['type']} never arrived"
        topic, got = received[event["id"]]
        assert topic == topo.topic_for_event_type(event["type"])
        assert got["type"] == event["type"]
        assert got.get_data() == event.get_data()
        assert got["dataschema"] == event["dataschema"]


def test_publishing_an_invalid_event_is_refused(emulators: StackConfig) -> None:
    event = events.new_event(
        "io.speakerline.job.failed.v1",
        {"job_id": "job_abcdefgh", "error": {"stage": "ingest", "code": "x", "message": "m", "retriable": False}},
        source="//t",
    )
    event.data["error"]["stage"] = "nowhere"  # corrupted after building: publish must catch it
    with pytest.raises(events.InvalidEvent, match="schema_violation"):
        PubSubPublisher(emulators.project, topology.load()).publish([event])


def _probe_service(topo: topology.Topology, project: str, handler: runtime.Handler) -> runtime.ServiceDef:
    accepts = frozenset(t for topic in topo.topics.values() for t in topic.event_types)
    return runtime.ServiceDef(
        name="probe",
        routes={"handle": runtime.Route(handler=handler, accepts=accepts)},
        publisher=PubSubPublisher(project, topo),
        topology=topo,
    )


def test_a_message_failing_five_times_reaches_the_dead_letter_subscription(emulators: StackConfig, unique: str) -> None:
    event_type = "io.speakerline.audio.uploaded.v1"
    topo = one_subscription_topology(unique, [event_type], max_attempts=5)
    provision.apply_pubsub(topo, emulators.project)
    sub = next(iter(topo.subscriptions.values()))
    attempts: list[int | None] = []

    def always_fails(event: events.CloudEvent) -> list[events.CloudEvent]:
        attempts.append(event["id"])
        raise RuntimeError("engine exploded")

    worker = runtime.PullWorker(_probe_service(topo, emulators.project, always_fails), emulators.project)
    worker.start()
    try:
        example = json.loads(EXAMPLES[[p.parent.name for p in EXAMPLES].index("audio.uploaded")].read_text())
        event = events.new_event(event_type, example["data"], source="//t")
        worker.service.publisher.publish([event])
        dead = pull(emulators.project, sub.dead_letter_subscription, 1, timeout_s=60)
    finally:
        worker.stop()
    assert len(dead) == 1
    attributes = dict(dead[0].attributes)
    assert attributes["ce-id"] == event["id"]
    assert attributes["CloudPubSubDeadLetterSourceSubscription"] == sub.name
    assert attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert "CloudPubSubDeadLetterSourceSubscriptionProject" in attributes
    assert len(attempts) == 5


def test_a_message_that_is_not_a_cloudevent_is_dead_lettered_at_once(emulators: StackConfig, unique: str) -> None:
    topo = one_subscription_topology(unique, ["io.speakerline.audio.uploaded.v1"])
    provision.apply_pubsub(topo, emulators.project)
    sub = next(iter(topo.subscriptions.values()))
    handled: list[str] = []
    worker = runtime.PullWorker(
        _probe_service(topo, emulators.project, lambda e: handled.append(e["id"]) or []), emulators.project
    )
    worker.start()
    try:
        worker.service.publisher.publish_raw(sub.topic, b"just some bytes", {"origin": "somebody"})
        worker.service.publisher.publish_raw(
            sub.topic,
            b"{}",
            {
                "ce-specversion": "1.0",
                "ce-type": "io.speakerline.audio.uploaded.v7",
                "ce-source": "//x",
                "ce-id": "v7",
                "content-type": "application/json",
            },
        )
        dead = pull(emulators.project, sub.dead_letter_subscription, 2, timeout_s=30)
    finally:
        worker.stop()
    reasons = {m.data: dict(m.attributes) for m in dead}
    assert set(reasons) == {b"just some bytes", b"{}"}
    first = reasons[b"just some bytes"]
    assert first["speakerline-dead-letter-reason"] == "not_a_cloudevent"
    assert first["speakerline-dead-letter-subscription"] == sub.name
    assert first["origin"] == "somebody"  # the original attributes survive for replay
    assert reasons[b"{}"]["speakerline-dead-letter-reason"] == "unknown_major_version"
    assert handled == []
    # Forwarded once and acknowledged: nothing is redelivered to the handler's subscription.
    assert pull(emulators.project, sub.name, 1, timeout_s=3) == []


def test_unhandled_known_types_are_acknowledged_not_dead_lettered(emulators: StackConfig, unique: str) -> None:
    topo = one_subscription_topology(unique, ["io.speakerline.audio.uploaded.v1"])
    provision.apply_pubsub(topo, emulators.project)
    sub = next(iter(topo.subscriptions.values()))
    service = _probe_service(topo, emulators.project, lambda e: [])
    service.routes = {"handle": runtime.Route(handler=lambda e: [], accepts=frozenset())}
    worker = runtime.PullWorker(service, emulators.project)
    worker.start()
    try:
        doc = json.loads(EXAMPLES[[p.parent.name for p in EXAMPLES].index("audio.uploaded")].read_text())
        data, attributes = events.to_pubsub(events.new_event(doc["type"], doc["data"], source="//t"))
        service.publisher.publish_raw(sub.topic, data, attributes)
        wait_for(lambda: True, timeout_s=1)
        assert pull(emulators.project, sub.dead_letter_subscription, 1, timeout_s=5) == []
    finally:
        worker.stop()


def test_a_long_job_keeps_its_lease_and_is_not_redelivered(emulators: StackConfig, unique: str) -> None:
    """The subscription's ack deadline is 10 s; the handler works for 22 s while the client extends the lease."""
    import time

    topo = one_subscription_topology(unique, ["io.speakerline.audio.uploaded.v1"])
    provision.apply_pubsub(topo, emulators.project)
    sub = next(iter(topo.subscriptions.values()))
    assert sub.ack_deadline_s == 10
    calls: list[float] = []

    def slow(event: events.CloudEvent) -> list[events.CloudEvent]:
        calls.append(time.monotonic())
        time.sleep(22)
        return []

    service = _probe_service(topo, emulators.project, slow)
    service.routes = {"handle": runtime.Route(handler=slow, accepts=frozenset(["io.speakerline.audio.uploaded.v1"]),
                                              concurrency=1)}  # fmt: skip
    worker = runtime.PullWorker(service, emulators.project)
    worker.start()
    try:
        doc = json.loads(EXAMPLES[[p.parent.name for p in EXAMPLES].index("audio.uploaded")].read_text())
        service.publisher.publish([events.new_event(doc["type"], doc["data"], source="//t")])
        wait_for(lambda: calls, timeout_s=20)
        time.sleep(30)  # the handler's 22 s plus time for a (wrong) redelivery to show up
    finally:
        worker.stop()
    assert len(calls) == 1
    assert pull(emulators.project, sub.dead_letter_subscription, 1, timeout_s=2) == []
