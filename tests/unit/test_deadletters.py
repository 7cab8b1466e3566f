"""Dead letters without Pub/Sub: reasons, filters (--since included), rendering, the attributes a replayed message
carries, rate limiting on an injected clock, and replay/purge against in-memory Pub/Sub clients (ordering of
republish and ack, stopping at a failure, nothing lost, the audit record)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from speakerline import events, topology
from speakerline_tools.cli.dlq import format_letter
from speakerline_tools.deadletters import (
    DeadLetter,
    DeadLetterQueue,
    Filter,
    Pacer,
    Report,
    excerpt,
    parse_since,
    render_data,
    replay_attributes,
    safe_text,
    select,
)
from tests.fakes import FakeClock

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _letter(**attributes: str) -> DeadLetter:
    return DeadLetter("postprocess-diarization", "m1", "ack1", b"{}", attributes, "2026-11-20T09:30:00+00:00")


def test_reason_comes_from_the_runtime_or_means_retries_exhausted() -> None:
    assert _letter(**{"speakerline-dead-letter-reason": "schema_violation"}).reason == "schema_violation"
    exhausted = _letter(CloudPubSubDeadLetterSourceDeliveryCount="5", **{"ce-jobid": "job_x"})
    assert exhausted.reason == "retries_exhausted" and exhausted.replayable
    assert exhausted.delivery_attempts == 5
    assert not _letter(**{"speakerline-dead-letter-reason": "not_a_cloudevent"}).replayable
    assert _letter(**{"speakerline-dead-letter-reason": "not_a_cloudevent"}).delivery_attempts is None
    # Neither mark: somebody published it to the dead-letter topic; not replayed unless asked.
    stray = _letter(**{"ce-jobid": "job_x"})
    assert stray.reason == "unknown" and not stray.replayable


def test_filters_combine() -> None:
    letter = _letter(**{"ce-jobid": "job_a", "ce-type": events.AudioIngested.TYPE})
    assert Filter().matches(letter)
    assert Filter(job_ids=frozenset({"job_a"}), reasons=frozenset({"unknown"})).matches(letter)
    assert not Filter(job_ids=frozenset({"job_b"})).matches(letter)
    assert not Filter(event_types=frozenset({events.JobFailed.TYPE})).matches(letter)
    exhausted = _letter(CloudPubSubDeadLetterSourceDeliveryCount="5", **{"ce-jobid": "job_a"})
    assert Filter(job_ids=frozenset({"job_a"}), reasons=frozenset({"retries_exhausted"})).matches(exhausted)


def test_since_filter_compares_with_the_dead_letter_publish_time() -> None:
    letter = _letter()  # published 2026-11-20T09:30:00Z
    assert Filter(since=datetime(2026, 11, 20, 9, 30, tzinfo=UTC)).matches(letter)  # inclusive
    assert not Filter(since=datetime(2026, 11, 20, 9, 30, 0, 1, tzinfo=UTC)).matches(letter)
    # An offset in the publish time is honoured.
    local = DeadLetter("s", "m", "a", b"", {}, "2026-11-20T10:30:00+01:00")
    assert local.published_at == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert Filter(since=datetime(2026, 11, 20, 9, 0, tzinfo=UTC)).describe() == {
        "reasons": [], "job_ids": [], "event_types": [], "since": "2026-11-20T09:00:00+00:00"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("1d", NOW - timedelta(days=1)),
        ("1w", NOW - timedelta(weeks=1)),
        ("90s", NOW - timedelta(seconds=90)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("1h 30m", NOW - timedelta(minutes=90)),
        ("1.5h", NOW - timedelta(minutes=90)),
        ("2H", NOW - timedelta(hours=2)),
        ("2026-11-20T09:30:00Z", datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),
        ("2026-11-20T10:30:00+01:00", datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),
        ("2026-11-20T09:30", datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),  # no offset: UTC
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
    ],
)
def test_since_takes_an_iso_time_or_a_duration(text: str, expected: datetime) -> None:
    at = parse_since(text, NOW)
    assert at == expected and at.tzinfo is not None


@pytest.mark.parametrize("text", ["", "yesterday", "30", "-5m", "5x", "m", "2026-13-01", "2026-11-23T00:00:00Z"])
def test_since_refuses_anything_else_and_the_future(text: str) -> None:
    with pytest.raises(ValueError, match="--since"):
        parse_since(text, NOW)


def test_select_matches_sorts_oldest_first_and_limits() -> None:
    def at(minute: int, job: str) -> DeadLetter:
        return DeadLetter("s", f"m{minute}", f"a{minute}", b"", {"ce-jobid": job}, f"2026-11-20T09:{minute:02d}:00Z")

    letters = [at(30, "a"), at(10, "a"), at(20, "b"), at(40, "a")]
    assert [x.message_id for x in select(letters, Filter(job_ids=frozenset({"a"})))] == ["m10", "m30", "m40"]
    assert [x.message_id for x in select(letters, Filter(), limit=2)] == ["m10", "m20"]
    since = Filter(since=datetime(2026, 11, 20, 9, 20, tzinfo=UTC))
    assert [x.message_id for x in select(letters, since)] == ["m20", "m30", "m40"]


def test_replayed_attributes_drop_dead_letter_marks_and_record_the_replay() -> None:
    letter = _letter(**{
        "ce-id": "e1", "ce-type": "t", "content-type": "application/json",
        "CloudPubSubDeadLetterSourceSubscription": "s", "CloudPubSubDeadLetterSourceDeliveryCount": "5",
        "speakerline-dead-letter-reason": "x",
    })  # fmt: skip
    at = datetime(2026, 11, 22, tzinfo=UTC)
    attributes = replay_attributes(letter, "r1", "ops@host", at)
    assert attributes == {
        "ce-id": "e1", "ce-type": "t", "content-type": "application/json",
        "speakerline-replay-id": "r1", "speakerline-replay-by": "ops@host", "speakerline-replay-at": at.isoformat(),
        "speakerline-replay-from": "postprocess-diarization",
    }  # fmt: skip


def test_data_is_pretty_json_when_it_parses_else_a_safe_excerpt() -> None:
    assert render_data(b'{"job_id": "j", "n": [1, 2]}') == ("json", {"job_id": "j", "n": [1, 2]})
    fmt, text = render_data(b"plain \x1b[31mred\x1b[0m\nline two\r")
    assert fmt == "text" and "\x1b" not in text and "\r" not in text
    assert text == "plain \\x1b[31mred\\x1b[0m\nline two\\r"
    fmt, raw = render_data(b"\xff\xfe\x00binary")
    assert fmt == "binary" and raw == "\\xff\\xfe\\x00binary"
    long = excerpt(b"a" * 2000, limit=10)
    assert long == "a" * 10 + "… (2000 bytes)"
    assert safe_text("ok é \u009b[2J") == "ok é \\x9b[2J"  # C1 control (CSI) escaped, letters kept


def test_detail_and_the_text_rendering_show_everything_safely() -> None:
    letter = DeadLetter(
        "postprocess-diarization", "m9", "a9", b'{"job_id": "job_z", "name": "caf\xc3\xa9"}',
        {"speakerline-dead-letter-reason": "schema_violation", "speakerline-dead-letter-message": "bad \x1b[2J",
         "speakerline-dead-letter-message-id": "orig-1", "ce-jobid": "job_z", "ce-type": events.JobFailed.TYPE,
         "ce-id": "e9"},
        "2026-11-20T09:30:00+00:00",
    )  # fmt: skip
    detail = letter.detail()
    assert detail["reason"] == "schema_violation" and detail["delivery_attempts"] is None
    assert detail["original_message_id"] == "orig-1" and detail["event_id"] == "e9"
    assert detail["data_format"] == "json" and detail["data"] == {"job_id": "job_z", "name": "café"}
    assert detail["attributes"]["ce-jobid"] == "job_z" and detail["data_bytes"] == 36
    json.dumps(detail)  # --json prints it as is
    text = format_letter(letter)
    assert "\x1b" not in text and "bad \\x1b[2J" in text
    assert '    "name": "café"' in text and "reason     schema_violation" in text
    assert "  ce-type: " + events.JobFailed.TYPE in text


def test_pacer_spaces_goes_by_one_over_the_rate() -> None:
    clock = FakeClock(now=100.0)
    pacer = Pacer(4.0, clock, clock.sleep)
    times = []
    for _ in range(5):
        pacer.wait()
        times.append(clock.now)
    assert times == [100.0, 100.25, 100.5, 100.75, 101.0]  # 5 goes at 4/s take (5 - 1) / 4 s
    # Time spent elsewhere counts: a slow go is followed at once, but never by a burst to catch up.
    clock.now += 3.0
    pacer.wait()
    pacer.wait()
    assert clock.sleeps[-1] == pytest.approx(0.25) and clock.now == pytest.approx(104.25)


def test_an_unlimited_pacer_never_sleeps_and_a_long_wait_keeps_calling_back() -> None:
    clock = FakeClock(now=100.0)
    unlimited = Pacer(None, clock, clock.sleep)
    for _ in range(3):
        unlimited.wait()
    assert clock.sleeps == []
    slow = Pacer(0.05, clock, clock.sleep)  # one per 20 s
    calls: list[float] = []
    slow.wait(lambda: calls.append(clock.now), max_sleep_s=5.0)
    slow.wait(lambda: calls.append(clock.now), max_sleep_s=5.0)
    assert clock.sleeps == [5.0, 5.0, 5.0, 5.0] and calls == [105.0, 110.0, 115.0, 120.0]
    with pytest.raises(ValueError):
        Pacer(0, clock, clock.sleep)


def test_report_status_and_audit_record() -> None:
    dry = Report("purge", "s", "ops@h", False, Filter().describe(), {"all": True, "limit": None})
    assert dry.status == "dry_run" and dry.to_dict()["purge_id"] == dry.id and "purged" in dry.to_dict()
    run = Report("replay", "s", "ops@h", True, Filter(job_ids=frozenset({"j"})).describe(), {"limit": 1})
    assert run.status == "started"
    run.done.append(_letter().summary())
    run.finished = True
    record = run.audit_record()
    assert record["status"] == "completed" and record["dry_run"] is False
    assert (record["message_ids"], record["count"], record["at"]) == (["m1"], 1, run.at)
    assert record["filter"]["job_ids"] == ["j"] and record["action"] == "replay" and record["operator"] == "ops@h"
    run.error = "boom"
    assert run.status == "failed"


# --- replay and purge against in-memory Pub/Sub clients ----------------------------------------------------------


@dataclass
class FakePubSub:
    """Both clients in one: the dead-letter subscription (pull/ack/modify) and the topic (publish)."""

    messages: dict[str, tuple[bytes, dict[str, str], datetime]] = field(default_factory=dict)
    leased: set[str] = field(default_factory=set)
    log: list[tuple[str, str]] = field(default_factory=list)  # ("publish"|"ack"|"release"|"renew", message id)
    fail_publish_of: set[bytes] = field(default_factory=set)
    clock: FakeClock | None = None

    def subscription_path(self, project: str, name: str) -> str:
        return f"projects/{project}/subscriptions/{name}"

    def topic_path(self, project: str, name: str) -> str:
        return f"projects/{project}/topics/{name}"

    def add(self, message_id: str, job: str, minute: int, **attributes: str) -> None:
        attributes = {"ce-jobid": job, "CloudPubSubDeadLetterSourceDeliveryCount": "5", **attributes}
        self.messages[message_id] = (message_id.encode(), attributes, datetime(2026, 11, 20, 9, minute, tzinfo=UTC))

    def pull(self, request: dict[str, Any], timeout: float) -> Any:
        free = [m for m in self.messages if m not in self.leased][: request["max_messages"]]
        self.leased.update(free)
        received = []
        for message_id in free:
            data, attributes, at = self.messages[message_id]
            message = SimpleNamespace(message_id=message_id, data=data, attributes=attributes, publish_time=at)
            received.append(SimpleNamespace(ack_id="ack-" + message_id, message=message))
        return SimpleNamespace(received_messages=received)

    def acknowledge(self, request: dict[str, Any]) -> None:
        for ack_id in request["ack_ids"]:
            message_id = ack_id.removeprefix("ack-")
            self.log.append(("ack", message_id))
            self.messages.pop(message_id)
            self.leased.discard(message_id)

    def modify_ack_deadline(self, request: dict[str, Any]) -> None:
        for ack_id in request["ack_ids"]:
            message_id = ack_id.removeprefix("ack-")
            if request["ack_deadline_seconds"] == 0:
                self.log.append(("release", message_id))
                self.leased.discard(message_id)
            else:
                self.log.append(("renew", message_id))

    def publish(self, topic: str, data: bytes, **attributes: str) -> Any:
        self.log.append(("publish", data.decode()))
        if self.clock is not None:
            self.log.append(("at", str(self.clock.now)))
        if data in self.fail_publish_of:
            raise RuntimeError("publish refused")
        return SimpleNamespace(result=lambda timeout: "new-" + data.decode())


class FakeAudit:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def record(self, report: Report) -> None:
        self.records.append(report.audit_record())


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> tuple[DeadLetterQueue, FakePubSub, topology.Subscription]:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")  # real clients are built, never used
    topo = topology.load()
    q = DeadLetterQueue("p", topo)
    fake = FakePubSub()
    q.subscriber = fake
    q.publisher = fake
    return q, fake, topo.subscriptions["diarization-audio-ingested"]


def test_replay_acks_each_message_only_after_its_republish_and_releases_the_rest(queue: Any) -> None:
    q, fake, sub = queue
    fake.add("m1", "a", 10)
    fake.add("m2", "b", 20)
    fake.add("m3", "a", 30)
    fake.add("m4", "a", 40, **{"speakerline-dead-letter-reason": "schema_violation"})
    audit = FakeAudit()
    report = q.replay(sub, Filter(job_ids=frozenset({"a"})), operator="o", limit=5, execute=True, audit=audit)
    assert [r["message_id"] for r in report.done] == ["m1", "m3"] and report.error is None
    assert [r["message_id"] for r in report.skipped] == ["m4"]
    ops = [entry for entry in fake.log if entry[0] in ("publish", "ack")]
    assert ops == [("publish", "m1"), ("ack", "m1"), ("publish", "m3"), ("ack", "m3")]
    assert set(fake.messages) == {"m2", "m4"} and not fake.leased  # the rest handed back, nothing lost
    # Recorded before anything was touched, then with the outcome.
    assert [r["status"] for r in audit.records] == ["started", "completed"]
    assert audit.records[0]["planned_message_ids"] == ["m1", "m3"] and audit.records[0]["message_ids"] == []
    assert audit.records[1]["message_ids"] == ["m1", "m3"] and audit.records[1]["count"] == 2


def test_replay_dry_run_and_limit_touch_nothing(queue: Any) -> None:
    q, fake, sub = queue
    for i in range(4):
        fake.add(f"m{i}", "a", 10 + i)
    audit = FakeAudit()
    report = q.replay(sub, Filter(), operator="o", limit=2, execute=False, audit=audit)
    assert [r["message_id"] for r in report.done] == ["m0", "m1"]
    assert not any(op in ("publish", "ack") for op, _ in fake.log) and len(fake.messages) == 4 and not fake.leased
    assert [(r["status"], r["dry_run"], r["message_ids"]) for r in audit.records] == [("dry_run", True, ["m0", "m1"])]
    done = q.replay(sub, Filter(), operator="o", limit=2, execute=True)
    assert [r["message_id"] for r in done.done] == ["m0", "m1"] and set(fake.messages) == {"m2", "m3"}


def test_replay_stops_at_a_failed_republish_and_keeps_that_message(queue: Any) -> None:
    q, fake, sub = queue
    for i in range(3):
        fake.add(f"m{i}", "a", 10 + i)
    fake.fail_publish_of.add(b"m1")
    audit = FakeAudit()
    report = q.replay(sub, Filter(), operator="o", limit=10, execute=True, audit=audit)
    assert [r["message_id"] for r in report.done] == ["m0"] and "m1" in str(report.error)
    assert set(fake.messages) == {"m1", "m2"} and not fake.leased  # not acknowledged, handed back at once
    assert audit.records[-1]["status"] == "failed" and audit.records[-1]["message_ids"] == ["m0"]


def test_replay_rate_spaces_republishes_and_keeps_leases_alive(queue: Any) -> None:
    q, fake, sub = queue
    for i in range(3):
        fake.add(f"m{i}", "a", 10 + i)
    clock = FakeClock(now=100.0)
    fake.clock = clock
    q.replay(sub, Filter(), operator="o", limit=10, execute=True, rate=2.0, clock=clock, sleep=clock.sleep)
    assert [float(t) for op, t in fake.log if op == "at"] == [100.0, 100.5, 101.0]
    fake.log.clear()
    for i in range(3):
        fake.add(f"s{i}", "a", 20 + i)
    slow = FakeClock(now=100.0)
    fake.clock = slow
    q.replay(sub, Filter(), operator="o", limit=10, execute=True, rate=1 / 30, clock=slow, sleep=slow.sleep)
    assert [float(t) for op, t in fake.log if op == "at"] == [100.0, 130.0, 160.0]
    # Waiting 30 s per message outlasts a 60 s lease: the messages still waiting were renewed on the way.
    assert ("renew", "s2") in fake.log and not fake.messages


def test_purge_needs_a_job_filter_or_everything_and_acks_only_the_matches(queue: Any) -> None:
    q, fake, sub = queue
    fake.add("m1", "a", 10)
    fake.add("m2", "b", 20)
    fake.add("m3", "a", 30, **{"speakerline-dead-letter-reason": "not_a_cloudevent"})
    with pytest.raises(ValueError):
        q.purge(sub, Filter(reasons=frozenset({"retries_exhausted"})), operator="o", everything=False, execute=True)
    assert not fake.leased and len(fake.messages) == 3
    audit = FakeAudit()
    dry = q.purge(sub, Filter(job_ids=frozenset({"a"})), operator="o", everything=False, execute=False, audit=audit)
    assert [r["message_id"] for r in dry.done] == ["m1", "m3"] and len(fake.messages) == 3 and not fake.leased
    done = q.purge(sub, Filter(job_ids=frozenset({"a"})), operator="o", everything=False, execute=True, audit=audit)
    assert [r["message_id"] for r in done.done] == ["m1", "m3"] and set(fake.messages) == {"m2"}
    assert [r["status"] for r in audit.records] == ["dry_run", "started", "completed"]
    everything = q.purge(sub, Filter(), operator="o", everything=True, execute=True)
    assert [r["message_id"] for r in everything.done] == ["m2"] and not fake.messages
