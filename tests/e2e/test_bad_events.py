"""Bad input as CloudEvents published straight to every topic of infra/topology.yaml, each broken in one way:
expected in the subscription's dead-letter topic at once, with `speakerline-dead-letter-reason`, exactly once."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
import grpc
import pytest
from google.cloud.pubsub_v1.publisher.exceptions import MessageTooLargeError
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from speakerline import events, topology
from speakerline.pubsub import PubSubPublisher
from speakerline_tools import stack

from .bad_input import DEAD_LETTER_TIMEOUT_S, SCHEMAS, Row, healthy, record

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("bad_input_report")]


# --- B. broken CloudEvents on every topic ---------------------------------------------------------------------------


def _example(event_type: str) -> dict[str, Any]:
    name = events.event_name(event_type)
    data: dict[str, Any] = json.loads((SCHEMAS / name / "v1.example.json").read_text())["data"]
    return data


@dataclasses.dataclass(frozen=True)
class Poison:
    case: str
    reason: str  # on a CloudEvent subscription
    make: Callable[[str, dict[str, str]], tuple[bytes, dict[str, str]]]  # (event type, valid attributes) -> message


def _without(key: str) -> Callable[[str, dict[str, str]], tuple[bytes, dict[str, str]]]:
    return lambda t, a: (json.dumps(_example(t)).encode(), {k: v for k, v in a.items() if k != key})


def _with(**attrs: str) -> Callable[[str, dict[str, str]], tuple[bytes, dict[str, str]]]:
    return lambda t, a: (json.dumps(_example(t)).encode(), {**a, **{k.replace("_", "-"): v for k, v in attrs.items()}})


# Python clients of the emulator cannot receive a message over gRPC's 4 MiB (googleapis/python-pubsub#3): the
# largest body a local consumer can refuse is just under it. See test_a_message_over_10_mb_is_refused_at_publish.
BIG_BODY = 4 * 1000 * 1000
POISONS = [
    Poison("missing ce-id", "not_a_cloudevent", _without("ce-id")),
    Poison("missing ce-source", "not_a_cloudevent", _without("ce-source")),
    Poison("missing ce-type", "not_a_cloudevent", _without("ce-type")),
    Poison("missing ce-specversion", "not_a_cloudevent", _without("ce-specversion")),
    Poison("ce-specversion 0.3", "unsupported_specversion", _with(ce_specversion="0.3")),
    Poison("ce-specversion 2.0", "not_a_cloudevent", _with(ce_specversion="2.0")),
    Poison("data not JSON", "malformed_data", lambda t, a: (b'{"job_id": "job_', a)),
    Poison("data failing the schema", "schema_violation", lambda t, a: (json.dumps({"job_id": 42}).encode(), a)),
    Poison(
        "unknown type", "unknown_event_type", lambda t, a: (b"{}", {**a, "ce-type": "io.speakerline.audio.exploded.v1"})
    ),
    Poison("unknown major version", "unknown_major_version", lambda t, a: (b"{}", {**a, "ce-type": t[:-1] + "2"})),
    Poison("another dataschema", "dataschema_mismatch", _with(ce_dataschema="https://example.com/other.json")),
    Poison("a 4 MB body", "malformed_data", lambda t, a: (b"x" * BIG_BODY, a)),
]
# Raw bodies on the bucket-notification topic, which carries GCS notifications, not CloudEvents.
GCS_ATTRIBUTES = {"payloadFormat": "JSON_API_V1", "eventType": "OBJECT_FINALIZE"}
GCS_POISONS = [
    ("GCS payloadFormat NONE", "not_a_gcs_notification", b"{}", {**GCS_ATTRIBUTES, "payloadFormat": "NONE"}),
    ("GCS OBJECT_DELETE", "unexpected_gcs_event", b"{}", {**GCS_ATTRIBUTES, "eventType": "OBJECT_DELETE"}),
    ("GCS body not JSON", "malformed_data", b"<xml/>", GCS_ATTRIBUTES),
    (
        "GCS body without a name",
        "malformed_data",
        b'{"bucket": "speakerline-uploads", "generation": "1"}',
        GCS_ATTRIBUTES,
    ),
    (
        "GCS size not a number",
        "malformed_data",
        b'{"bucket": "speakerline-uploads", "name": "a", "generation": "1", "size": "big"}',
        GCS_ATTRIBUTES,
    ),
]


def _subscriber() -> pubsub_v1.SubscriberClient:
    """A subscriber that can receive messages up to Pub/Sub's 10 MB: with PUBSUB_EMULATOR_HOST the client's own
    channel keeps gRPC's 4 MiB receive limit, and a pull of several large copies would be over it."""
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    channel = grpc.insecure_channel(os.environ["PUBSUB_EMULATOR_HOST"], options=options)
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))


@dataclasses.dataclass
class DeadLetters:
    expected: dict[tuple[str, str], str]  # (subscription, case) -> reason
    found: dict[tuple[str, str], list[Any]]  # (subscription, case) -> the dead-lettered copies


@pytest.fixture(scope="module")
def dead_letters(pipeline: stack.StackConfig) -> DeadLetters:
    """Every poison on every topic at once; then every dead-letter subscription pulled until each (subscription,
    case) arrived."""
    topo = topology.load()
    publisher = PubSubPublisher(pipeline.project, topo)
    run = uuid.uuid4().hex
    expected: dict[tuple[str, str], str] = {}
    for topic in topo.topics.values():
        subs = [s for s in topo.subscriptions.values() if s.topic == topic.name]
        event_type = topic.event_types[0] if topic.event_types else events.AudioUploaded.TYPE
        for poison in POISONS:
            attributes = {
                "ce-specversion": "1.0",
                "ce-id": str(uuid.uuid4()),
                "ce-source": "//e2e/bad-input",
                "ce-type": event_type,
                "content-type": "application/json",
            }
            data, attributes = poison.make(event_type, attributes)
            publisher.publish_raw(topic.name, data, {**attributes, "bad-input-run": run, "bad-input-case": poison.case})
            for sub in subs:
                expected[(sub.name, poison.case)] = (
                    "not_a_gcs_notification" if sub.payload != "cloudevent" else poison.reason
                )
        if not topic.event_types:
            for case, reason, data, attributes in GCS_POISONS:
                publisher.publish_raw(topic.name, data, {**attributes, "bad-input-run": run, "bad-input-case": case})
                for sub in subs:
                    expected[(sub.name, case)] = reason

    subscriber = _subscriber()
    found: dict[tuple[str, str], list[Any]] = {key: [] for key in expected}
    pending = {topo.subscriptions[name].dead_letter_subscription: name for name, _ in expected}
    deadline = time.monotonic() + DEAD_LETTER_TIMEOUT_S
    while time.monotonic() < deadline and any(not copies for copies in found.values()):
        for dead_letter, source in pending.items():
            path = subscriber.subscription_path(pipeline.project, dead_letter)
            response = subscriber.pull(request={"subscription": path, "max_messages": 50}, timeout=10)
            mine = [m for m in response.received_messages if m.message.attributes.get("bad-input-run") == run]
            if mine:
                subscriber.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in mine]})
            for m in mine:
                found.setdefault((source, m.message.attributes["bad-input-case"]), []).append(m.message)
        time.sleep(0.2)
    subscriber.close()
    # One report row per case and expected reason, over every subscription that got it; the bucket-notification
    # topic takes no CloudEvent at all, so its CloudEvent cases make one row.
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for (name, case), reason in expected.items():
        label = case
        if reason == "not_a_gcs_notification" and case in {poison.case for poison in POISONS}:
            label = f"each of the {len(POISONS)} CloudEvent cases above"
        groups.setdefault((label, reason), []).append((name, case))
    for (label, reason), keys in groups.items():
        at_once = [
            copies[0]
            for copies in (found.get(key, []) for key in keys)
            if len(copies) == 1
            and copies[0].attributes.get("speakerline-dead-letter-reason") == reason
            and "CloudPubSubDeadLetterSourceDeliveryCount" not in copies[0].attributes
        ]
        sub_names = sorted({name for name, _ in keys})
        topics = sorted({topo.subscriptions[name].topic for name in sub_names})
        record(
            Row(
                label,
                f"topic {', '.join(topics)} ({len(sub_names)} subscription{'s' if len(sub_names) > 1 else ''})",
                f"dead-lettered at once: {reason}",
                f"dead-lettered at once, exactly once: {len(at_once)} of {len(keys)} messages, {reason}",
                at_once[0].attributes.get("speakerline-dead-letter-message", "") if at_once else "",
                answered=len(at_once) == len(keys),
            )
        )
    return DeadLetters(expected, found)


def test_every_broken_event_is_dead_lettered_at_once_with_its_reason(
    pipeline: stack.StackConfig, dead_letters: DeadLetters
) -> None:
    problems = []
    for (sub, case), reason in dead_letters.expected.items():
        copies = dead_letters.found.get((sub, case), [])
        if len(copies) != 1:
            problems.append(f"{case} on {sub}: {len(copies)} dead-lettered copies (want exactly 1)")
            continue
        attributes = copies[0].attributes
        if attributes.get("speakerline-dead-letter-reason") != reason:
            problems.append(
                f"{case} on {sub}: reason {attributes.get('speakerline-dead-letter-reason')!r}, want {reason!r}"
            )
        if attributes.get("speakerline-dead-letter-subscription") != sub or not attributes.get(
            "speakerline-dead-letter-message"
        ):
            problems.append(f"{case} on {sub}: no subscription or message attribute: {dict(attributes)}")
        if "CloudPubSubDeadLetterSourceDeliveryCount" in attributes:  # Pub/Sub's own policy: it was retried
            problems.append(f"{case} on {sub}: dead-lettered by Pub/Sub after retries, not at once")
    assert not problems, "\n".join(problems)
    big = next(copies for (_, case), copies in dead_letters.found.items() if case == "a 4 MB body")
    assert len(big[0].data) == BIG_BODY  # forwarded whole
    healthy(pipeline)


def test_a_message_over_10_mb_is_refused_at_publish(pipeline: stack.StackConfig) -> None:
    """Pub/Sub's limit is 10 MB per publish request: the client refuses before sending, so no consumer ever sees
    it. (Between 4 MiB and 10 MB the emulator takes the message but its Python consumers cannot receive it: each
    delivery breaks the worker's stream until Pub/Sub's dead-letter policy moves it after 5 attempts, minutes
    later; on real Pub/Sub the client receives up to 10 MB and the message is dead-lettered at once.)"""
    row = record(Row("a 10 MB + 1 byte body", "topic audio-uploaded", "publish refused"))
    publisher = PubSubPublisher(pipeline.project, topology.load())
    with pytest.raises(MessageTooLargeError) as refused:
        publisher.publish_raw("audio-uploaded", b"x" * (10 * 1000 * 1000 + 1), {"bad-input-case": "over 10 MB"})
    row.observed, row.shown, row.answered = "publish refused (MessageTooLargeError)", str(refused.value), True
    healthy(pipeline)
