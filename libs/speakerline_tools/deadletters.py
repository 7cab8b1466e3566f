"""Dead-letter inspection and replay for ops: safe (dry run unless asked, filters, nothing lost), audited.

Every service subscription `<sub>` has a dead-letter topic and subscription `<sub>-dead-letter`. A message gets
there two ways: Pub/Sub moves it after the last failed delivery (attributes `CloudPubSubDeadLetterSource*`), or
the runtime forwards a message that must never be processed (attributes `speakerline-dead-letter-*`).

Replay republishes a message to the topic its subscription reads, with the dead-letter attributes removed and
`speakerline-replay-*` attributes added, and acknowledges it in the dead-letter subscription only after the
publish succeeded. Every consumer is idempotent (event ids), so the other subscriptions of that topic seeing
it again is harmless. Messages that never were valid events are not replayed unless explicitly included: they
would only be dead-lettered again.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1

from speakerline import logs
from speakerline.runtime import DEAD_LETTER_ATTR
from speakerline.topology import Subscription, Topology

PUBSUB_DEAD_LETTER_PREFIX = "CloudPubSubDeadLetterSource"
REPLAY_ATTR = "speakerline-replay-"
RETRIES_EXHAUSTED = "retries_exhausted"


@dataclass(frozen=True)
class DeadLetter:
    subscription: str  # the service subscription that gave up on it
    message_id: str
    ack_id: str
    data: bytes
    attributes: Mapping[str, str]
    publish_time: str

    @property
    def reason(self) -> str:
        """Why it is here: the runtime's reason code, or retries_exhausted when Pub/Sub moved it."""
        return self.attributes.get(DEAD_LETTER_ATTR + "reason", RETRIES_EXHAUSTED)

    @property
    def job_id(self) -> str | None:
        return self.attributes.get("ce-jobid")

    @property
    def event_type(self) -> str | None:
        return self.attributes.get("ce-type")

    @property
    def replayable(self) -> bool:
        """Only messages that were valid events when they failed are worth re-delivering."""
        return self.reason == RETRIES_EXHAUSTED

    def summary(self) -> dict[str, Any]:
        return {
            "subscription": self.subscription,
            "message_id": self.message_id,
            "reason": self.reason,
            "detail": self.attributes.get(DEAD_LETTER_ATTR + "message"),
            "job_id": self.job_id,
            "event_type": self.event_type,
            "event_id": self.attributes.get("ce-id"),
            "deliveries": self.attributes.get(PUBSUB_DEAD_LETTER_PREFIX + "DeliveryCount"),
            "dead_lettered_at": self.publish_time,
        }


@dataclass(frozen=True)
class Filter:
    reasons: frozenset[str] = frozenset()
    job_ids: frozenset[str] = frozenset()
    event_types: frozenset[str] = frozenset()

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (not self.reasons or letter.reason in self.reasons)
            and (not self.job_ids or letter.job_id in self.job_ids)
            and (not self.event_types or letter.event_type in self.event_types)
        )


def replay_attributes(letter: DeadLetter, replay_id: str, operator: str, at: datetime) -> dict[str, str]:
    """The attributes a replayed message is published with (pure)."""
    kept = {
        k: v
        for k, v in letter.attributes.items()
        if not k.startswith(DEAD_LETTER_ATTR) and not k.startswith(PUBSUB_DEAD_LETTER_PREFIX)
    }
    kept.update(
        {
            REPLAY_ATTR + "id": replay_id,
            REPLAY_ATTR + "by": operator,
            REPLAY_ATTR + "at": at.isoformat(),
            REPLAY_ATTR + "from": letter.subscription,
        }
    )
    return kept


@dataclass
class ReplayReport:
    replay_id: str
    operator: str
    executed: bool
    replayed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "replay_id": self.replay_id,
            "operator": self.operator,
            "executed": self.executed,
            "replayed": self.replayed,
            "skipped": self.skipped,
        }


class DeadLetterQueue:
    """Pull-based access to the dead-letter subscriptions of the topology."""

    def __init__(self, project: str, topology: Topology) -> None:
        self.project = project
        self.topology = topology
        self.subscriber = pubsub_v1.SubscriberClient()
        self.publisher = pubsub_v1.PublisherClient()

    def _path(self, sub: Subscription) -> str:
        return str(self.subscriber.subscription_path(self.project, sub.dead_letter_subscription))

    def peek(self, sub: Subscription, limit: int) -> list[DeadLetter]:
        """Up to `limit` messages, leased for the ack deadline (release or ack them)."""
        letters: list[DeadLetter] = []
        while len(letters) < limit:
            # return_immediately (deprecated for streaming workloads, right for an operator's one-shot look):
            # an empty dead-letter subscription answers at once instead of holding the pull open.
            request = {
                "subscription": self._path(sub),
                "max_messages": min(100, limit - len(letters)),
                "return_immediately": True,
            }
            response = self.subscriber.pull(request=request, timeout=30)
            if not response.received_messages and not letters:
                # Pub/Sub may answer an immediate pull with nothing although messages wait: ask once more.
                time.sleep(1.0)
                response = self.subscriber.pull(request=request, timeout=30)
            if not response.received_messages:
                break
            for received in response.received_messages:
                m = received.message
                letters.append(
                    DeadLetter(
                        sub.name, m.message_id, received.ack_id, m.data, dict(m.attributes), m.publish_time.isoformat()
                    )
                )
        return letters

    def release(self, sub: Subscription, letters: Iterable[DeadLetter]) -> None:
        ack_ids = [letter.ack_id for letter in letters]
        if ack_ids:
            self.subscriber.modify_ack_deadline(
                request={"subscription": self._path(sub), "ack_ids": ack_ids, "ack_deadline_seconds": 0}
            )

    def list(self, subs: Iterable[Subscription], flt: Filter, limit: int) -> list[DeadLetter]:
        found: list[DeadLetter] = []
        for sub in subs:
            letters = self.peek(sub, limit)
            self.release(sub, letters)  # listing never consumes
            found.extend(letter for letter in letters if flt.matches(letter))
        return found[:limit]

    def replay(
        self,
        sub: Subscription,
        flt: Filter,
        *,
        operator: str,
        limit: int,
        execute: bool,
        include_invalid: bool = False,
        audit_dir: Path | None = None,
    ) -> ReplayReport:
        log = logs.get_logger(subscription=sub.name)
        report = ReplayReport(replay_id=uuid.uuid4().hex, operator=operator, executed=execute)
        letters = self.peek(sub, limit)
        chosen = [letter for letter in letters if flt.matches(letter)]
        untouched = [letter for letter in letters if not flt.matches(letter)]
        topic = str(self.publisher.topic_path(self.project, sub.topic))
        now = datetime.now(UTC)
        try:
            for letter in chosen:
                record = letter.summary()
                if not (letter.replayable or include_invalid):
                    report.skipped.append({**record, "why": "never a valid event: replaying would fail again"})
                    untouched.append(letter)
                    continue
                if execute:
                    attributes = replay_attributes(letter, report.replay_id, operator, now)
                    new_id = self.publisher.publish(topic, letter.data, **attributes).result(timeout=60)
                    # Acknowledged only once the republish is confirmed: a crash in between duplicates, never loses.
                    self.subscriber.acknowledge(request={"subscription": self._path(sub), "ack_ids": [letter.ack_id]})
                    record["replayed_message_id"] = str(new_id)
                    log.warning("dead letter replayed", replay_id=report.replay_id, operator=operator, **record)
                else:
                    untouched.append(letter)
                report.replayed.append(record)
        finally:
            self.release(sub, untouched)
        if execute and audit_dir is not None:
            audit_dir.mkdir(parents=True, exist_ok=True)
            audit_file = audit_dir / f"{now.strftime('%Y%m%dT%H%M%SZ')}-{report.replay_id}.json"
            audit_file.write_text(json.dumps(report.to_dict(), indent=2))
        return report
