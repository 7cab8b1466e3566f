"""CloudEvents over the real Pub/Sub emulator: round trips, dead-lettering of failures and of poison messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
import pytest

from speakerline import events, logs, runtime, topology
from speakerline.pubsub import PubSubPublisher
from speakerline_tools import provision
from speakerline_tools.stack import StackConfig

from .helpers import one_subscription_topology, pull, wait_for

pytestmark = pytest.mark.integration

EXAMPLES = sorted(Path("schemas/events").glob("*/v1.example.json"))
UPLOADED = events.AudioUploaded.TYPE


def _example_event(path: Path) -> events.AnyEvent:
    """The example's event, typed, with a new id (each test publishes its own)."""
    typed = events.parse_json(path.read_bytes())
    return type(typed).new(typed.data, source="//speakerline/tests")  # type: ignore[arg-type]


def _uploaded() -> events.AnyEvent:
    return _example_event(next(p for p in EXAMPLES if p.parent.name == "audio.uploaded"))


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
    sent = [_example_event(example) for example in EXAMPLES]
    assert {type(e) for e in sent} == set(events.EVENT_CLASSES.values())  # one example per event class
    publisher.publish(sent)

    received: dict[str, tuple[str, events.AnyEvent, str]] = {}
    for topic, probe in probes.items():
        expected = sum(1 for e in sent if topo.topic_for_event_type(e.TYPE) == topic)
        for message in pull(emulators.project, probe, expected):
            event = events.parse(message)
            received[event.id] = (topic, event, message.attributes["ce-dataschema"])
    for event in sent:
        assert event.id in received, f"{event.TYPE} never arrived"
        topic, got, dataschema = received[event.id]
        assert topic == topo.topic_for_event_type(event.TYPE)
        assert type(got) is type(event)
        assert got.data == event.data
        assert got.payload() == event.payload()
        assert dataschema == events.catalog().get(event.TYPE).dataschema


def test_publishing_an_invalid_event_is_refused(emulators: StackConfig) -> None:
    error = events.job_error("ingest", "x", "m", retriable=False)
    event = events.JobFailed.new(events.models.JobFailedV1Data(job_id="job_abcdefgh", error=error), source="//t")
    error.code = "Not A Code"  # corrupted after building (models are mutable): publish must catch it
    with pytest.raises(events.InvalidEvent, match="schema_violation"):
        PubSubPublisher(emulators.project, topology.load()).publish([event])


def _probe_service(topo: topology.Topology, project: str, handler: runtime.Handler) -> runtime.ServiceDef:
    accepts = tuple(events.EVENT_CLASSES.values())
    return runtime.ServiceDef(
        name="probe",
        routes={"handle": runtime.Route(handler=handler, accepts=accepts)},
        publisher=PubSubPublisher(project, topo),
        topology=topo,
    )


def test_a_message_failing_five_times_reaches_the_dead_letter_subscription(emulators: StackConfig, unique: str) -> None:
    topo = one_subscription_topology(unique, [UPLOADED], max_attempts=5)
    provision.apply_pubsub(topo, emulators.project)
    sub = next(iter(topo.subscriptions.values()))
    attempts: list[int] = []
    finals: list[bool] = []

    def always_fails(event: events.AnyEvent, context: runtime.Context) -> list[events.AnyEvent]:
        attempts.append(context.attempt)
        finals.append(context.final_attempt)
        raise RuntimeError("engine exploded")

    worker = runtime.PullWorker(_probe_service(topo, emulators.project, always_fails), emulators.project)
    worker.start()
    try:
        event = _uploaded()
        worker.service.publisher.publish([event])
        dead = pull(emulators.project, sub.dead_letter_subscription, 1, timeout_s=60)
    finally:
        worker.stop()
    assert len(dead) == 1
    attributes = dict(dead[0].attributes)
    assert attributes["ce-id"] == event.id
    assert attributes["CloudPubSubDeadLetterSourceSubscription"] == sub.name
    assert attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert "CloudPubSubDeadLetterSourceSubscriptionProject" in attributes
    # The delivery attempt reaches the handler in its context, and the last one says so.
    assert attempts == [1, 2, 3, 4, 5]
    assert finals == [False, False, False, False, True]


def test_a_message_that_is_not_a_cloudevent_is_dead_lettered_at_once(emulators: StackConfig, unique: str) -> None:
    topo = one_subscription_topology(unique, [UPLOADED])
    provision.apply_pubsub(topo, emulators.project)
    sub = next(iter(topo.subscriptions.values()))
    handled: list[str] = []

    def record(event: events.AnyEvent, context: runtime.Context) -> list[events.AnyEvent]:
        handled.append(event.id)
        return []

    worker = runtime.PullWorker(_probe_service(topo, emulators.project, record), emulators.project)
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
    topo = one_subscription_topology(unique, [UPLOADED])
    provision.apply_pubsub(topo, emulators.project)
    sub = next(iter(topo.subscriptions.values()))
    service = _probe_service(topo, emulators.project, lambda e, c: [])
    service.routes = {"handle": runtime.Route(handler=lambda e, c: [], accepts=(events.JobCompleted,))}
    worker = runtime.PullWorker(service, emulators.project)
    worker.start()
    try:
        data, attributes = events.to_pubsub(_uploaded())
        service.publisher.publish_raw(sub.topic, data, attributes)
        wait_for(lambda: True, timeout_s=1)
        assert pull(emulators.project, sub.dead_letter_subscription, 1, timeout_s=5) == []
    finally:
        worker.stop()


def test_a_long_job_keeps_its_lease_and_is_not_redelivered(emulators: StackConfig, unique: str) -> None:
    """The subscription's ack deadline is 10 s and the worker's leases 4 s, renewed every 1.5 s: the handler works
    for 16 s (four leases) while the worker renews, and nothing is redelivered: not to the worker's second slot,
    which goes on pulling meanwhile and would get a lapsed message at once."""
    import time

    topo = one_subscription_topology(unique, [UPLOADED])
    provision.apply_pubsub(topo, emulators.project)
    sub = next(iter(topo.subscriptions.values()))
    assert sub.ack_deadline_s == 10
    calls: list[float] = []
    deadlines: list[float] = []

    def slow(event: events.AnyEvent, context: runtime.Context) -> list[events.AnyEvent]:
        calls.append(time.monotonic())
        deadlines.append(context.deadline - time.time())
        time.sleep(16)
        return []

    service = _probe_service(topo, emulators.project, slow)
    service.routes = {"handle": runtime.Route(handler=slow, accepts=(events.AudioUploaded,), concurrency=2,
                                              max_lease_s=120)}  # fmt: skip
    worker = runtime.PullWorker(service, emulators.project, lease_s=4, renew_s=1.5)
    worker.start()
    try:
        service.publisher.publish([_uploaded()])
        wait_for(lambda: calls, timeout_s=20)
        time.sleep(22)  # the handler's 16 s plus time for a (wrong) redelivery to show up
    finally:
        worker.stop()
    assert len(calls) == 1
    assert 100 < deadlines[0] <= 120  # the context's deadline is the route's lease, not the 10 s ack deadline
    assert pull(emulators.project, sub.dead_letter_subscription, 1, timeout_s=2) == []


def test_a_dead_workers_message_comes_back_within_its_lease(emulators: StackConfig, unique: str) -> None:
    """A worker that stops renewing (its process died: no nack, no more extensions) gives its message back
    within one lease, not the subscription's ack deadline."""
    import time

    topo = one_subscription_topology(unique, [UPLOADED])
    provision.apply_pubsub(topo, emulators.project)
    sub = next(iter(topo.subscriptions.values()))
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(emulators.project, sub.name)
    PubSubPublisher(emulators.project, topo).publish([_uploaded()])

    def take() -> list[Any]:  # unlike helpers.pull, leaves the message unacknowledged
        return list(subscriber.pull(request={"subscription": path, "max_messages": 1}, timeout=10).received_messages)

    taken = wait_for(take, timeout_s=30)
    leases = runtime.Leases(subscriber, logs.get_logger(), lease_s=3)
    leases.hold(path, [taken[0].ack_id], max_lease_s=60)  # what the worker does on receipt, then it "dies"
    began = time.monotonic()
    again = wait_for(take, timeout_s=30)
    assert again[0].message.message_id == taken[0].message.message_id
    assert time.monotonic() - began < sub.ack_deadline_s
