"""`speakerline dlq list|show|replay|purge|audit` against the emulators: reading consumes nothing, replay is dry
unless asked, republishes to the original topic (filtered by job, --since and --limit, at most --rate per second),
skips never-valid messages, purge deletes only what it names, and every operation leaves an audit record in
Firestore (`dlq_audit`) and a log line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
import pytest
import yaml
from google.cloud import firestore

from speakerline import events, topology
from speakerline.pubsub import PubSubPublisher
from speakerline_tools import cli, deadletters, provision
from speakerline_tools.stack import StackConfig

from .helpers import pull, wait_for

pytestmark = pytest.mark.integration


def _cli(cfg: StackConfig, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    executable = str(Path(sys.executable).with_name("speakerline"))
    full_env = {**os.environ, **cfg.emulator_env(), **(env or {})}
    return subprocess.run([executable, "dlq", *args], env=full_env, capture_output=True, text=True, timeout=120)


def _audit(cfg: StackConfig, operation_id: str) -> dict[str, Any]:
    snap = firestore.Client(project=cfg.project).collection("dlq_audit").document(operation_id).get()
    assert snap.exists, f"no audit record {operation_id}"
    record = snap.to_dict()
    assert record is not None
    return record


def _logged(stderr: str, message: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == message]


class Isolated:
    """A throwaway topology of one subscription (its own topic and dead-letter subscription), so that a test sees
    exactly the dead letters it made; the CLI gets it through SPEAKERLINE_TOPOLOGY."""

    def __init__(self, cfg: StackConfig, tmp_path: Path, unique: str) -> None:
        name = f"dlq-{unique}"
        doc = {
            "defaults": {"subscription": {
                "ack_deadline_s": 10, "max_delivery_attempts": 5,
                "retry": {"minimum_backoff_s": 0, "maximum_backoff_s": 1}, "message_retention_s": 3600}},
            "topics": {name: {"event_types": [events.DiarizationStarted.TYPE]}},
            "subscriptions": {f"{name}-sub": {"topic": name, "service": "probe", "handler": "handle"}},
            "buckets": {},
            "services": {"probe": {"module": "none"}},
        }  # fmt: skip
        path = tmp_path / "topology.yaml"
        path.write_text(yaml.safe_dump(doc))
        self.cfg = cfg
        self.topology = topology.parse(doc)
        provision.apply_pubsub(self.topology, cfg.project)
        self.sub = self.topology.subscriptions[f"{name}-sub"]
        self.env = {"SPEAKERLINE_TOPOLOGY": str(path)}
        self.publisher = PubSubPublisher(cfg.project, self.topology)
        self.queue = deadletters.DeadLetterQueue(cfg.project, self.topology)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _cli(self.cfg, *args, env=self.env)

    def exhausted(self, example: Any, job_id: str) -> tuple[str, events.DiarizationStarted, bytes]:
        """A valid event as Pub/Sub dead-letters it after the last failed delivery: (message id, event, body)."""
        data = example("diarization.started")
        data["job_id"] = job_id
        event = events.DiarizationStarted.new(
            events.models.DiarizationStartedV1Data.model_validate(data), source="//tests/dlq"
        )
        body, attributes = events.to_pubsub(event)
        message_id = self.publisher.publish_raw(self.sub.dead_letter_topic, body, {
            **attributes, "CloudPubSubDeadLetterSourceSubscription": self.sub.name,
            "CloudPubSubDeadLetterSourceDeliveryCount": "5"})  # fmt: skip
        return message_id, event, body

    def refused(self, body: bytes, reason: str, **attributes: str) -> str:
        """A message as the runtime forwards one it must never process."""
        return self.publisher.publish_raw(self.sub.dead_letter_topic, body, {
            "speakerline-dead-letter-reason": reason, "speakerline-dead-letter-subscription": self.sub.name,
            **attributes})  # fmt: skip

    def waiting(self) -> list[deadletters.DeadLetter]:
        """What is in the dead-letter subscription now, oldest first (consumes nothing)."""
        return self.queue.list([self.sub], deadletters.Filter(), 1000)


def test_list_and_replay(emulators: StackConfig, example, unique: str) -> None:
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
    dead_id = publisher.publish_raw(sub.dead_letter_topic, body, {
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

    dry_run = _cli(emulators, "replay", *job)
    dry = json.loads(dry_run.stdout)
    assert dry["executed"] is False and len(dry["replayed"]) == 1

    # The topic is shared with the rest of the session's tests: only this job's messages count.
    def this_job(messages: list[Any]) -> list[Any]:
        return [m for m in messages if m.attributes.get("ce-subject") == f"jobs/{data['job_id']}"]

    assert this_job(pull(emulators.project, probe, 1, timeout_s=3)) == []
    dry_record = _audit(emulators, dry["replay_id"])  # a dry run is audited too, and says so
    assert (dry_record["dry_run"], dry_record["status"], dry_record["message_ids"]) == (True, "dry_run", [dead_id])

    done = _cli(emulators, "replay", *job, "--execute", "--operator", "ops@test")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (message,) = wait_for(lambda: this_job(pull(emulators.project, probe, 1, timeout_s=5)), timeout_s=30)
    assert message.attributes["ce-id"] == event.id and message.data == body
    assert message.attributes["speakerline-replay-by"] == "ops@test"
    assert message.attributes["speakerline-replay-id"] == report["replay_id"]
    assert not any(k.startswith("CloudPubSubDeadLetterSource") for k in message.attributes)
    record = _audit(emulators, report["replay_id"])
    assert report["replayed"][0]["event_id"] == event.id
    assert (record["action"], record["operator"], record["subscription"]) == ("replay", "ops@test", sub.name)
    assert (record["dry_run"], record["status"], record["message_ids"], record["count"]) == (
        False, "completed", [dead_id], 1)  # fmt: skip
    assert record["filter"]["job_ids"] == [data["job_id"]] and isinstance(record["at"], datetime)
    (logged,) = _logged(done.stderr, "dead-letter replay")
    assert logged["id"] == report["replay_id"] and logged["message_ids"] == [dead_id] and logged["dry_run"] is False
    assert json.loads(_cli(emulators, "list", *job, "--json").stdout) == []  # acknowledged after the republish

    poison = ["--subscription", sub.name, "--reason", "not_a_cloudevent"]
    skipped = json.loads(_cli(emulators, "replay", *poison, "--execute").stdout)
    assert skipped["replayed"] == [] and skipped["skipped"]
    assert json.loads(_cli(emulators, "list", *poison, "--json").stdout)  # still there for inspection


def test_show_prints_each_dead_letter_in_full_and_consumes_nothing(
    emulators: StackConfig, tmp_path: Path, example, unique: str
) -> None:
    iso = Isolated(emulators, tmp_path, unique)
    exhausted_id, event, body = iso.exhausted(example, f"show-{unique}")
    bad_data = {"job_id": f"show-{unique}", "unexpected": True}
    invalid_id = iso.refused(json.dumps(bad_data).encode(), "schema_violation", **{
        "speakerline-dead-letter-message": "data: Additional properties are not allowed",
        "speakerline-dead-letter-message-id": "original-1", "ce-type": events.DiarizationStarted.TYPE,
        "ce-id": "bad-1", "ce-jobid": f"show-{unique}"})  # fmt: skip
    garbage_id = iso.refused(b"\x1b[2Jboom\xff\x00", "not_a_cloudevent")
    wait_for(lambda: len(iso.waiting()) == 3)

    shown = iso.cli("show", iso.sub.name, "--json")
    assert shown.returncode == 0, shown.stderr
    exhausted, invalid, garbage = json.loads(shown.stdout)  # oldest first
    assert exhausted["message_id"] == exhausted_id and exhausted["reason"] == "retries_exhausted"
    assert (exhausted["delivery_attempts"], exhausted["job_id"], exhausted["event_id"]) == (5, event.job_id, event.id)
    assert exhausted["event_type"] == events.DiarizationStarted.TYPE and exhausted["dead_lettered_at"]
    assert exhausted["data_format"] == "json" and exhausted["data"] == json.loads(body)
    assert exhausted["attributes"]["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert exhausted["attributes"]["ce-id"] == event.id
    assert (invalid["message_id"], invalid["reason"], invalid["delivery_attempts"]) == (
        invalid_id, "schema_violation", None)  # fmt: skip
    assert invalid["detail"] == "data: Additional properties are not allowed"
    assert invalid["original_message_id"] == "original-1" and invalid["data"] == bad_data
    assert (garbage["message_id"], garbage["reason"], garbage["data_format"]) == (
        garbage_id, "not_a_cloudevent", "binary")  # fmt: skip
    assert garbage["data"] == "\\x1b[2Jboom\\xff\\x00" and garbage["data_bytes"] == 10

    # The dead-letter subscription's own name works too; the text form shows the same, with nothing raw.
    text = iso.cli("show", iso.sub.dead_letter_subscription)
    assert text.returncode == 0, text.stderr
    assert "\x1b" not in text.stdout and "\\x1b[2Jboom\\xff\\x00" in text.stdout
    assert f"reason     schema_violation\ndetail     {invalid['detail']}" in text.stdout
    assert '    "unexpected": true' in text.stdout and f"  ce-id: {event.id}" in text.stdout
    assert "attempts   5" in text.stdout
    assert text.stdout.rstrip().endswith(f"3 dead letter(s) of {iso.sub.name} (none consumed)")

    (first,) = json.loads(iso.cli("show", iso.sub.name, "--limit", "1", "--json").stdout)
    assert first["message_id"] == exhausted_id
    assert [x.message_id for x in iso.waiting()] == [exhausted_id, invalid_id, garbage_id]  # nothing consumed


def test_replay_since_limit_and_rate(emulators: StackConfig, tmp_path: Path, example, unique: str) -> None:
    iso = Isolated(emulators, tmp_path, unique)
    older = [iso.exhausted(example, f"old-{unique}") for _ in range(2)]
    older_at = wait_for(lambda: [x.published_at for x in iso.waiting()] if len(iso.waiting()) == 2 else None)
    since = max(older_at) + timedelta(milliseconds=1)
    wait_for(lambda: datetime.now(UTC) > since + timedelta(milliseconds=5), interval_s=0.005)
    newer = [iso.exhausted(example, f"new-{unique}") for _ in range(4)]
    wait_for(lambda: len(iso.waiting()) == 6)

    dry = json.loads(iso.cli("replay", "--subscription", iso.sub.name, "--since", "1h").stdout)
    assert len(dry["replayed"]) == 6 and dry["filter"]["since"] and len(iso.waiting()) == 6

    rate = 5.0
    fast = iso.cli("replay", "--subscription", iso.sub.name, "--since", since.isoformat(),
                   "--rate", str(rate), "--execute")  # fmt: skip
    assert fast.returncode == 0, fast.stderr
    report = json.loads(fast.stdout)
    assert [r["message_id"] for r in report["replayed"]] == [message_id for message_id, _, _ in newer]
    republished = pull(emulators.project, iso.sub.name, 4)
    assert sorted(m.attributes["ce-id"] for m in republished) == sorted(e.id for _, e, _ in newer)
    # 4 messages at 5 per second: each republish is stamped with the time it went (after the replay's pacer let it),
    # at least (4 - 1) / 5 s from the first to the last. (Not the emulator's publish times: those are arrival times,
    # and a first publish that also opens the channel arrives late by as much; a CI run saw 0.588 s.)
    sent = sorted(datetime.fromisoformat(m.attributes[deadletters.REPLAY_ATTR + "at"]) for m in republished)
    assert (sent[-1] - sent[0]).total_seconds() >= (4 - 1) / rate
    assert [x.message_id for x in iso.waiting()] == [message_id for message_id, _, _ in older]
    record = _audit(emulators, report["replay_id"])
    assert record["options"] == {"limit": 100, "rate": rate, "include_invalid": False}
    assert record["filter"]["since"] == since.isoformat() and record["count"] == 4

    one = json.loads(iso.cli("replay", "--subscription", iso.sub.name, "--limit", "1", "--execute").stdout)
    assert [r["message_id"] for r in one["replayed"]] == [older[0][0]]  # the oldest first
    (message,) = pull(emulators.project, iso.sub.name, 1)
    assert message.attributes["ce-id"] == older[0][1].id
    assert [x.message_id for x in iso.waiting()] == [older[1][0]]


def test_purge_by_job_and_all_with_its_audit_trail(
    emulators: StackConfig, tmp_path: Path, example, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    iso = Isolated(emulators, tmp_path, unique)
    job_x = [iso.exhausted(example, f"px-{unique}")[0] for _ in range(2)]
    job_y = iso.exhausted(example, f"py-{unique}")[0]
    garbage = iso.refused(b"garbage", "not_a_cloudevent")
    wait_for(lambda: len(iso.waiting()) == 4)
    purge = ["purge", "--subscription", iso.sub.name]

    # Refused before anything is looked at (in-process: no need to pay for a CLI start).
    args = cli.build_parser().parse_args(["dlq", *purge, "--yes"])
    assert args.func(args) == 64 and "--job" in capsys.readouterr().err and len(iso.waiting()) == 4

    dry_run = iso.cli(*purge, "--job", f"px-{unique}")
    assert dry_run.returncode == 0 and "add --yes" in dry_run.stderr
    dry = json.loads(dry_run.stdout)
    assert dry["executed"] is False and [r["message_id"] for r in dry["purged"]] == job_x
    assert len(iso.waiting()) == 4

    by_job = iso.cli(*purge, "--job", f"px-{unique}", "--yes", "--operator", "ops@test")
    assert by_job.returncode == 0, by_job.stderr
    job_report = json.loads(by_job.stdout)
    assert [r["message_id"] for r in job_report["purged"]] == job_x
    assert [x.message_id for x in iso.waiting()] == [job_y, garbage]
    (logged,) = _logged(by_job.stderr, "dead-letter purge")
    assert logged["id"] == job_report["purge_id"] and logged["message_ids"] == job_x

    everything = json.loads(iso.cli(*purge, "--all", "--yes", "--operator", "ops@test").stdout)
    assert [r["message_id"] for r in everything["purged"]] == [job_y, garbage] and iso.waiting() == []

    record = _audit(emulators, job_report["purge_id"])
    assert (record["action"], record["operator"], record["subscription"], record["dry_run"]) == (
        "purge", "ops@test", iso.sub.name, False)  # fmt: skip
    assert (record["message_ids"], record["count"], record["status"]) == (job_x, 2, "completed")
    assert record["filter"]["job_ids"] == [f"px-{unique}"] and record["options"]["all"] is False
    assert _audit(emulators, everything["purge_id"])["options"]["all"] is True

    listed = iso.cli("audit", "--limit", "50", "--json")
    assert listed.returncode == 0, listed.stderr
    ours = [r for r in json.loads(listed.stdout) if r["subscription"] == iso.sub.name]
    assert [r["id"] for r in ours] == [everything["purge_id"], job_report["purge_id"], dry["purge_id"]]  # newest first
    assert [(r["dry_run"], r["count"]) for r in ours] == [(False, 2), (False, 2), (True, 2)]
    assert ours[0]["message_ids"] == [job_y, garbage] and isinstance(ours[0]["at"], str)

    text = iso.cli("audit", "--limit", "50").stdout.splitlines()
    rows = [next(i for i, line in enumerate(text) if op in line) for op in (r["id"] for r in ours)]
    assert rows == sorted(rows) and text[-1].endswith("record(s)")
    assert "purge" in text[rows[0]] and "dry run" in text[rows[2]] and "ops@test" in text[rows[1]]
