"""Dead-letter inspection, replay and purge for ops: safe (dry run unless asked, filters, nothing lost), audited.

Every service subscription `<sub>` has a dead-letter topic and subscription `<sub>-dead-letter`. A message gets
there two ways: Pub/Sub moves it after the last failed delivery (attributes `CloudPubSubDeadLetterSource*`), or
the runtime forwards a message that must never be processed (attributes `speakerline-dead-letter-*`).

Reading never consumes: the messages pulled are handed back at once (ack deadline 0). Replay republishes a
message to the topic its subscription reads, with the dead-letter attributes removed and `speakerline-replay-*`
attributes added, and acknowledges it in the dead-letter subscription only after the publish succeeded. Every
consumer is idempotent (event ids), so the other subscriptions of that topic seeing it again is harmless.
Messages that never were valid events are not replayed unless explicitly included: they would only be
dead-lettered again. Purge acknowledges (deletes for good) and never runs without a filter.

Every replay and purge, executed or dry run, is logged and recorded in the Firestore collection `dlq_audit`
(one document per operation, `AuditTrail`); an executed one is recorded before it touches anything, so that an
operation cut short still leaves its record.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import google.cloud.pubsub_v1 as pubsub_v1
from google.cloud import firestore

from speakerline import logs
from speakerline.runtime import DEAD_LETTER_ATTR
from speakerline.topology import Subscription, Topology

PUBSUB_DEAD_LETTER_PREFIX = "CloudPubSubDeadLetterSource"
REPLAY_ATTR = "speakerline-replay-"
RETRIES_EXHAUSTED = "retries_exhausted"
# Neither mark: published to a dead-letter topic by hand or by something that is not speakerline's runtime.
UNKNOWN_REASON = "unknown"
AUDIT_COLLECTION = "dlq_audit"

# How many messages one operation looks at, at most: filters apply to what was pulled, so the whole subscription
# is pulled (and held) up to this many. A report says `truncated` when there may be more.
MAX_SCAN = 10_000
# Lease of the messages an operation holds (provision.py creates the dead-letter subscriptions with 60 s), renewed
# well before it runs out while a slow (rate-limited) replay goes on.
LEASE_S = 60
LEASE_RENEW_S = 20.0
# Pub/Sub takes at most 2,500 ack ids per acknowledge/modify request.
_ACK_BATCH = 1000
# Bytes of a non-JSON payload `show` prints.
EXCERPT_BYTES = 512

Action = Literal["replay", "purge"]


@dataclass(frozen=True)
class DeadLetter:
    subscription: str  # the service subscription that gave up on it
    message_id: str
    ack_id: str
    data: bytes
    attributes: Mapping[str, str]
    publish_time: str  # ISO 8601: when it was published to the dead-letter topic

    @property
    def reason(self) -> str:
        """Why it is here: the runtime's reason code, retries_exhausted when Pub/Sub moved it, else unknown."""
        runtime_reason = self.attributes.get(DEAD_LETTER_ATTR + "reason")
        if runtime_reason:
            return runtime_reason
        if any(k.startswith(PUBSUB_DEAD_LETTER_PREFIX) for k in self.attributes):
            return RETRIES_EXHAUSTED
        return UNKNOWN_REASON

    @property
    def published_at(self) -> datetime:
        at = datetime.fromisoformat(self.publish_time)
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)

    @property
    def job_id(self) -> str | None:
        return self.attributes.get("ce-jobid")

    @property
    def event_type(self) -> str | None:
        return self.attributes.get("ce-type")

    @property
    def delivery_attempts(self) -> int | None:
        """Deliveries before Pub/Sub gave up; None for a message the runtime refused (it is never retried)."""
        count = self.attributes.get(PUBSUB_DEAD_LETTER_PREFIX + "DeliveryCount")
        return int(count) if count and count.isdigit() else None

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

    def detail(self) -> dict[str, Any]:
        """Everything about it, for `dlq show`: the summary, every attribute, and the data (see `render_data`)."""
        data_format, data = render_data(self.data)
        return {
            **self.summary(),
            "delivery_attempts": self.delivery_attempts,
            "original_message_id": self.attributes.get(DEAD_LETTER_ATTR + "message-id"),
            "attributes": dict(sorted(self.attributes.items())),
            "data_bytes": len(self.data),
            "data_format": data_format,
            "data": data,
        }


def safe_text(text: str, keep: str = "") -> str:
    """`text` with every non-printable character (terminal escape sequences, C1 controls, ...) except those in
    `keep` written as a Python escape: what a message carries is never written raw to an operator's terminal."""
    return "".join(c if c.isprintable() or c in keep else c.encode("unicode_escape").decode("ascii") for c in text)


def excerpt(data: bytes, limit: int = EXCERPT_BYTES) -> str:
    """The first `limit` bytes as text that is safe on a terminal: invalid UTF-8 and control characters are shown
    escaped (`safe_text`); newlines and tabs are kept."""
    text = safe_text(data[:limit].decode("utf-8", errors="backslashreplace"), keep="\n\t")
    return text + (f"… ({len(data)} bytes)" if len(data) > limit else "")


def render_data(data: bytes) -> tuple[str, Any]:
    """("json", the parsed value) when the data is JSON, else ("text" or "binary", a safe excerpt)."""
    try:
        return "json", json.loads(data)
    except ValueError:  # not UTF-8 (UnicodeDecodeError) or not JSON (JSONDecodeError)
        pass
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "binary", excerpt(data)
    return "text", excerpt(data)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: an ISO 8601 time (UTC when it has no offset; a date alone is its midnight) or a duration back
    from `now` (`90s`, `30m`, `2h`, `1d`, `1w`, combined as `1h30m`). Raises ValueError for anything else, and for
    a time in the future (it would match nothing: most likely a typo)."""
    value = text.strip()
    compact = value.replace(" ", "").lower()
    if compact and _DURATION_PART.sub("", compact) == "":
        seconds = sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION_PART.findall(compact))
        return now - timedelta(seconds=seconds)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"--since {text!r} is neither an ISO 8601 time (2026-11-20T09:30:00Z) nor a duration (30m, 2h, 1d)"
        ) from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    if at > now:
        raise ValueError(f"--since {text!r} is in the future ({at.isoformat()})")
    return at


@dataclass(frozen=True)
class Filter:
    reasons: frozenset[str] = frozenset()
    job_ids: frozenset[str] = frozenset()
    event_types: frozenset[str] = frozenset()
    #: only dead letters published (dead-lettered) at or after this time
    since: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (not self.reasons or letter.reason in self.reasons)
            and (not self.job_ids or letter.job_id in self.job_ids)
            and (not self.event_types or letter.event_type in self.event_types)
            and (self.since is None or letter.published_at >= self.since)
        )

    def describe(self) -> dict[str, Any]:
        """The filter as the audit trail records it."""
        return {
            "reasons": sorted(self.reasons),
            "job_ids": sorted(self.job_ids),
            "event_types": sorted(self.event_types),
            "since": self.since.isoformat() if self.since else None,
        }


def select(letters: Iterable[DeadLetter], flt: Filter, limit: int | None = None) -> list[DeadLetter]:
    """The letters the filter matches, oldest first, at most `limit` of them."""
    chosen = sorted((letter for letter in letters if flt.matches(letter)), key=lambda letter: letter.published_at)
    return chosen if limit is None else chosen[:limit]


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


class RateLimiter:
    """At most `per_second` goes per second (None: unlimited): two consecutive `wait()`s return at least
    1/per_second apart, so n goes take at least (n - 1)/per_second. A slow go is not made up for by a burst.
    The clock and sleep are injectable for tests."""

    def __init__(
        self,
        per_second: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError("the rate must be positive")
        self.interval = 1.0 / per_second if per_second else 0.0
        self.clock = clock
        self.sleep = sleep
        self._next: float | None = None

    def wait(self, while_waiting: Callable[[], None] = lambda: None, max_sleep_s: float = 5.0) -> None:
        """Return when the next go may happen; `while_waiting` runs after each sleep of at most `max_sleep_s`
        (renewing leases during a long wait)."""
        if not self.interval:
            return
        if self._next is not None:
            while (remaining := self._next - self.clock()) > 0:
                self.sleep(min(remaining, max_sleep_s))
                while_waiting()
        self._next = self.clock() + self.interval


@dataclass
class Report:
    """What one replay or purge did (or, in a dry run, would do); its audit record is `audit_record()`."""

    action: Action
    subscription: str
    operator: str
    executed: bool
    filter: dict[str, Any]
    options: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: replayed / purged (in a dry run: would be), each a DeadLetter summary
    done: list[dict[str, Any]] = field(default_factory=list)
    #: matched but left alone, each with `why`
    skipped: list[dict[str, Any]] = field(default_factory=list)
    #: message ids an executed operation was about to touch when it started
    planned: list[str] = field(default_factory=list)
    #: the subscription held more than MAX_SCAN messages: some may not have been looked at
    truncated: bool = False
    error: str | None = None
    finished: bool = False

    @property
    def status(self) -> str:
        if not self.executed:
            return "dry_run"
        if not self.finished:
            return "started"
        return "failed" if self.error else "completed"

    def to_dict(self) -> dict[str, Any]:
        verb = "replayed" if self.action == "replay" else "purged"
        return {
            f"{self.action}_id": self.id,
            "action": self.action,
            "subscription": self.subscription,
            "operator": self.operator,
            "at": self.at.isoformat(),
            "executed": self.executed,
            "status": self.status,
            "filter": self.filter,
            "options": self.options,
            verb: self.done,
            "skipped": self.skipped,
            "truncated": self.truncated,
            "error": self.error,
        }

    def audit_record(self) -> dict[str, Any]:
        """The `dlq_audit/{id}` document."""
        return {
            "id": self.id,
            "action": self.action,
            "operator": self.operator,
            "at": self.at,
            "subscription": self.subscription,
            "filter": self.filter,
            "options": self.options,
            "dry_run": not self.executed,
            "status": self.status,
            "message_ids": [row["message_id"] for row in self.done],
            "count": len(self.done),
            "planned_message_ids": self.planned,
            "skipped_message_ids": [row["message_id"] for row in self.skipped],
            "truncated": self.truncated,
            "error": self.error,
        }


class AuditTrail:
    """The `dlq_audit` collection: one document per replay or purge, by operation id."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def record(self, report: Report) -> None:
        self.client.collection(AUDIT_COLLECTION).document(report.id).set(report.audit_record())

    def get(self, operation_id: str) -> dict[str, Any] | None:
        snap = self.client.collection(AUDIT_COLLECTION).document(operation_id).get()
        return snap.to_dict() if snap.exists else None

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` records, newest first."""
        query = self.client.collection(AUDIT_COLLECTION).order_by("at", direction=firestore.Query.DESCENDING)
        return [snap.to_dict() for snap in query.limit(limit).stream()]


def _batches(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _ACK_BATCH):
        yield items[start : start + _ACK_BATCH]


class DeadLetterQueue:
    """Pull-based access to the dead-letter subscriptions of the topology."""

    def __init__(self, project: str, topology: Topology, scan_limit: int = MAX_SCAN) -> None:
        self.project = project
        self.topology = topology
        self.scan_limit = scan_limit
        self.subscriber = pubsub_v1.SubscriberClient()
        self.publisher = pubsub_v1.PublisherClient()

    def _path(self, sub: Subscription) -> str:
        return str(self.subscriber.subscription_path(self.project, sub.dead_letter_subscription))

    def peek(self, sub: Subscription, limit: int) -> list[DeadLetter]:
        """Up to `limit` messages, leased for the ack deadline (release or ack them)."""
        letters: dict[str, DeadLetter] = {}
        while len(letters) < limit:
            # return_immediately (deprecated for streaming workloads, right for an operator's one-shot look):
            # an empty dead-letter subscription answers at once instead of holding the pull open.
            request = {
                "subscription": self._path(sub),
                "max_messages": min(500, limit - len(letters)),
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
                # Delivered twice (at least once): the latest ack id is the one that counts.
                letters[m.message_id] = DeadLetter(
                    sub.name, m.message_id, received.ack_id, m.data, dict(m.attributes), m.publish_time.isoformat()
                )
        return list(letters.values())

    def _modify(self, sub: Subscription, letters: Iterable[DeadLetter], deadline_s: int) -> None:
        for batch in _batches([letter.ack_id for letter in letters]):
            self.subscriber.modify_ack_deadline(
                request={"subscription": self._path(sub), "ack_ids": list(batch), "ack_deadline_seconds": deadline_s}
            )

    def release(self, sub: Subscription, letters: Iterable[DeadLetter]) -> None:
        """Hand the messages back at once (ack deadline 0): nothing read is consumed."""
        self._modify(sub, letters, 0)

    def _acknowledge(self, sub: Subscription, letters: Sequence[DeadLetter]) -> None:
        for batch in _batches([letter.ack_id for letter in letters]):
            self.subscriber.acknowledge(request={"subscription": self._path(sub), "ack_ids": list(batch)})

    def show(self, sub: Subscription, flt: Filter, limit: int) -> list[DeadLetter]:
        """The matching dead letters of one subscription, oldest first, in full (nothing is consumed)."""
        return self.list([sub], flt, limit)

    def list(self, subs: Iterable[Subscription], flt: Filter, limit: int) -> list[DeadLetter]:
        found: list[DeadLetter] = []
        for sub in subs:
            letters = self.peek(sub, self.scan_limit)
            self.release(sub, letters)  # listing never consumes
            found.extend(select(letters, flt))
        return found[:limit]

    def _hold(
        self,
        sub: Subscription,
        letters: Sequence[DeadLetter],
        chosen: Sequence[DeadLetter],
        report: Report,
        audit: AuditTrail | None,
    ) -> dict[str, DeadLetter]:
        """Keep the chosen dead letters leased, hand the rest back, and record the operation before anything is
        touched (one cut short still has its record); the held letters by message id."""
        held = {letter.message_id: letter for letter in chosen}
        self.release(sub, [letter for letter in letters if letter.message_id not in held])
        report.planned = list(held)
        if audit is not None:
            audit.record(report)
        return held

    def _finish(self, report: Report, audit: AuditTrail | None) -> None:
        """Log the operation, then record it (both even when it failed half-way)."""
        report.finished = True
        record = report.audit_record()
        logs.get_logger().warning(
            f"dead-letter {report.action}" + (" (dry run)" if not report.executed else ""),
            **{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in record.items()},
        )
        if audit is not None:
            audit.record(report)

    def replay(
        self,
        sub: Subscription,
        flt: Filter,
        *,
        operator: str,
        limit: int,
        execute: bool,
        include_invalid: bool = False,
        rate: float | None = None,
        audit: AuditTrail | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Report:
        """Republish up to `limit` matching dead letters (oldest first) to `sub`'s topic, at most `rate` per
        second; each is acknowledged in the dead-letter subscription only after its republish succeeded. Stops at
        the first failure (the report says which); what was not acknowledged goes back to the subscription."""
        log = logs.get_logger(subscription=sub.name)
        options = {"limit": limit, "rate": rate, "include_invalid": include_invalid}
        report = Report("replay", sub.name, operator, execute, flt.describe(), options)
        letters = self.peek(sub, self.scan_limit)
        report.truncated = len(letters) >= self.scan_limit
        held: dict[str, DeadLetter] = {}  # leased by us until acknowledged or released
        try:
            chosen: list[DeadLetter] = []
            for letter in select(letters, flt):
                if letter.replayable or include_invalid:
                    chosen.append(letter)
                else:
                    report.skipped.append(
                        {**letter.summary(), "why": "never a valid event: replaying would fail again"}
                    )
            chosen = chosen[:limit]
            if not execute:
                report.done.extend(letter.summary() for letter in chosen)
                return report
            held = self._hold(sub, letters, chosen, report, audit)
            letters = []
            topic = str(self.publisher.topic_path(self.project, sub.topic))
            limiter = RateLimiter(rate, clock, sleep)
            renewed = [clock()]

            def keep_leases() -> None:
                # A slow replay outlasts the lease of the messages still waiting their turn.
                if clock() - renewed[0] >= LEASE_RENEW_S:
                    self._modify(sub, held.values(), LEASE_S)
                    renewed[0] = clock()

            for letter in chosen:
                limiter.wait(keep_leases)
                keep_leases()
                record = letter.summary()
                attributes = replay_attributes(letter, report.id, operator, datetime.now(UTC))
                try:
                    new_id = self.publisher.publish(topic, letter.data, **attributes).result(timeout=60)
                except Exception as exc:
                    report.error = f"republishing {letter.message_id} failed: {exc}"
                    log.exception("dead letter replay failed; stopping", replay_id=report.id, **record)
                    break
                record["replayed_message_id"] = str(new_id)
                try:
                    # Acknowledged only once the republish is confirmed: a crash in between duplicates, never loses.
                    self._acknowledge(sub, [letter])
                except Exception as exc:
                    report.error = (
                        f"{letter.message_id} was republished as {new_id} but not acknowledged ({exc}): it stays a "
                        "dead letter and a later replay repeats it (consumers deduplicate by event id)"
                    )
                    report.done.append({**record, "acknowledged": False})
                    log.exception("replayed dead letter not acknowledged; stopping", replay_id=report.id, **record)
                    break
                del held[letter.message_id]
                report.done.append(record)
                log.warning("dead letter replayed", replay_id=report.id, operator=operator, **record)
            return report
        except BaseException as exc:
            report.error = report.error or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.release(sub, [*letters, *held.values()])
            self._finish(report, audit)

    def purge(
        self,
        sub: Subscription,
        flt: Filter,
        *,
        operator: str,
        everything: bool,
        execute: bool,
        limit: int | None = None,
        audit: AuditTrail | None = None,
    ) -> Report:
        """Acknowledge (delete for good) the matching dead letters. Refuses to run without a job filter unless
        `everything` is said explicitly."""
        if not flt.job_ids and not everything:
            raise ValueError("purge needs a job filter or an explicit 'everything'")
        options = {"all": everything, "limit": limit}
        report = Report("purge", sub.name, operator, execute, flt.describe(), options)
        letters = self.peek(sub, self.scan_limit)
        report.truncated = len(letters) >= self.scan_limit
        held: dict[str, DeadLetter] = {}
        try:
            chosen = select(letters, flt, limit)
            if not execute:
                report.done.extend(letter.summary() for letter in chosen)
                return report
            held = self._hold(sub, letters, chosen, report, audit)
            letters = []
            for start in range(0, len(chosen), _ACK_BATCH):
                batch = chosen[start : start + _ACK_BATCH]
                try:
                    self._acknowledge(sub, batch)
                except Exception as exc:
                    report.error = f"acknowledging failed after {len(report.done)} message(s): {exc}"
                    logs.get_logger(subscription=sub.name).exception("dead-letter purge failed; stopping")
                    break
                for letter in batch:
                    del held[letter.message_id]
                    report.done.append(letter.summary())
            return report
        except BaseException as exc:
            report.error = report.error or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.release(sub, [*letters, *held.values()])
            self._finish(report, audit)
