"""The dead-letter subscriptions themselves: reading without consuming, replaying and purging, leased and audited."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import google.cloud.pubsub_v1 as pubsub_v1

from speakerline import logs
from speakerline.topology import Subscription, Topology
from speakerline_tools.deadletters.audit import AuditTrail, Report
from speakerline_tools.deadletters.letters import DeadLetter, Filter, replay_attributes, select
from speakerline_tools.deadletters.pacing import Pacer

# How many messages one operation looks at, at most: filters apply to what was pulled, so the whole subscription
# is pulled (and held) up to this many. A report says `truncated` when there may be more.
MAX_SCAN = 10_000
# Lease of the messages an operation holds (provision.py creates the dead-letter subscriptions with 60 s), renewed
# well before it runs out while a slow (rate-limited) replay goes on.
LEASE_S = 60
LEASE_RENEW_S = 20.0
# Pub/Sub takes at most 2,500 ack ids per acknowledge/modify request.
_ACK_BATCH = 1000


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
            pacer = Pacer(rate, clock, sleep)
            renewed = [clock()]

            def keep_leases() -> None:
                # A slow replay outlasts the lease of the messages still waiting their turn.
                if clock() - renewed[0] >= LEASE_RENEW_S:
                    self._modify(sub, held.values(), LEASE_S)
                    renewed[0] = clock()

            for letter in chosen:
                pacer.wait(keep_leases)
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
