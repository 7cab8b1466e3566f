"""Faults against the real stack (emulators + every service as its own process): every job completes exactly
once or fails with a reason, and what is left is ops' to replay.

Services are stopped exactly inside a handler with failpoints (`speakerline.failpoints`: the stack's services
read `SPEAKERLINE_FAILPOINTS_FILE`, armed here for one job id at a time), then SIGKILLed there: no chance to
nack, clean up or finish. Jobs are started by publishing `audio.uploaded` with a job id chosen here (the "publish an
event" way in of the README), so that a point can be armed before the job exists.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import google.cloud.storage as gcs
import pytest
from google.cloud import firestore

from notification.signing import verify
from speakerline import events, topology
from speakerline.events import models
from speakerline.pubsub import PubSubPublisher
from speakerline_tools import client, jobstore, stack
from tests.conftest import WebhookReceiver

from ..integration.helpers import wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample" / "conversation.flac"
#: the promise: a crashed handler's job is picked up again within this long
RECOVERY_S = 60.0
NOOP = lambda _: None  # noqa: E731


class Failpoints:
    """The stack's failpoints file, armed and disarmed atomically (several scenarios run at once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()

    def _write(self, change: Callable[[dict[str, Any]], None]) -> None:
        with self.lock:
            points = json.loads(self.path.read_text()) if self.path.exists() else {}
            change(points)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(points))
            os.replace(tmp, self.path)

    def arm(self, name: str, job_id: str, action: str = "pause") -> None:
        self._write(lambda points: points.__setitem__(name, {"job_id": job_id, "action": action}))

    def disarm(self, name: str) -> None:
        self._write(lambda points: points.pop(name, None))

    def hits(self, name: str, job_id: str) -> list[dict[str, Any]]:
        hits = self.path.with_name(self.path.name + ".hits")
        if not hits.exists():
            return []
        lines = [json.loads(line) for line in hits.read_text().splitlines() if line.strip()]
        return [h for h in lines if h["name"] == name and h["job_id"] == job_id]


@pytest.fixture(scope="module")
def failpoints(pipeline: stack.StackConfig) -> Iterator[Failpoints]:
    points = Failpoints(Path(pipeline.service_env["SPEAKERLINE_FAILPOINTS_FILE"]))
    yield points
    points.path.unlink(missing_ok=True)  # nothing stays armed for the tests after these


@pytest.fixture(scope="module")
def recording(pipeline: stack.StackConfig) -> str:
    """Real speech in the work bucket (which starts no job when written to)."""
    bucket = topology.load().bucket("work")
    blob = gcs.Client(project=pipeline.project).bucket(bucket).blob(f"e2e-fixtures/{uuid.uuid4().hex}.flac")
    blob.upload_from_filename(str(SAMPLE))
    return f"gs://{bucket}/{blob.name}"


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.server.shutdown()


def _start_job(pipeline: stack.StackConfig, job_id: str, uri: str, webhook: str) -> None:
    request = models.Request(input=models.Input(uri=uri), options=models.Options(), webhook_url=webhook)
    event = events.AudioUploaded.new(models.AudioUploadedV1Data(job_id=job_id, request=request), source="//e2e/faults")
    PubSubPublisher(pipeline.project, topology.load()).publish([event])


def _events(db: firestore.Client, job_id: str, type_: str) -> list[dict[str, Any]]:
    return [e for e in jobstore.job_events(db, job_id) if e["type"] == type_]


def _latest_time(found: list[dict[str, Any]]) -> float | None:
    return max(e["time"].timestamp() for e in found) if found else None


def _comparable(job: dict[str, Any]) -> dict[str, Any]:
    """What an undisturbed run and a disturbed one must agree on (not ids, times or attempt counts)."""
    return {
        "status": job["status"],
        "audio": {k: v for k, v in job["audio"].items() if k != "uri"},
        "source": job.get("source"),
        "engine": job.get("engine"),
        "summary": job["result"]["summary"],
        "notifications": sorted((n["channel"], n["status"]) for n in job.get("notifications") or []),
        "error": job.get("error"),
    }


def _requests_for(receiver: WebhookReceiver, job_id: str) -> list[tuple[str, dict[str, str], bytes]]:
    return [r for r in receiver.requests if job_id.encode() in r[2]]


def _settled(db: firestore.Client, job_id: str, channels: int = 2) -> dict[str, Any]:
    """The job document once both channels' reports are projected."""

    def settled() -> dict[str, Any] | None:
        job = jobstore.get_job(db, job_id)
        return job if job and len(job.get("notifications") or []) >= channels else None

    found: dict[str, Any] = wait_for(settled, timeout_s=60)
    return found


def _kill(pipeline: stack.StackConfig, service: str) -> float:
    pid = stack._read_pid(pipeline, service)
    assert pid is not None, service
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not stack._group_alive(pid), timeout_s=15)  # dead, not just signalled
    return time.time()


@dataclasses.dataclass(frozen=True)
class Fault:
    service: str
    point: str
    #: when the job was seen picked up again after the crash (epoch seconds), or None if not yet
    picked_up: Callable[[firestore.Client, str], float | None]


def _ingested(db: firestore.Client, job_id: str) -> float | None:
    return _latest_time(_events(db, job_id, events.AudioIngested.TYPE))


def _restarted_diarization(db: firestore.Client, job_id: str) -> float | None:
    started = _events(db, job_id, events.DiarizationStarted.TYPE)
    return _latest_time([e for e in started if e["data"]["attempt"] >= 2])


def _completed(db: firestore.Client, job_id: str) -> float | None:
    return _latest_time(_events(db, job_id, events.JobCompleted.TYPE))


def _team_channel_notified(db: firestore.Client, job_id: str) -> float | None:
    delivered = _events(db, job_id, events.NotificationDelivered.TYPE)
    return _latest_time([e for e in delivered if e["data"]["channel"] == "slack"])


def _projected(db: firestore.Client, job_id: str) -> float | None:
    return time.time() if jobstore.get_job(db, job_id) is not None else None


FAULTS = [
    Fault("ingest", "ingest.normalise", _ingested),
    Fault("diarization", "diarization.engine", _restarted_diarization),
    Fault("postprocess", "postprocess.outputs", _completed),
    Fault("notification", "notification.between_channels", _team_channel_notified),
    Fault("projector", "projector.apply", _projected),
]


@dataclasses.dataclass
class Outcome:
    job: dict[str, Any]
    recovery_s: float


def _crash_and_recover(
    pipeline: stack.StackConfig, points: Failpoints, fault: Fault, job_id: str, uri: str, hook: str
) -> Outcome:
    db = firestore.Client(project=pipeline.project)
    began = time.time()

    def say(what: str) -> None:
        print(f"[{fault.service} +{time.time() - began:6.1f}s] {what}", flush=True)

    points.arm(fault.point, job_id)
    _start_job(pipeline, job_id, uri, hook)
    wait_for(lambda: points.hits(fault.point, job_id), timeout_s=300, interval_s=0.2)
    say(f"inside {fault.point}")
    killed_at = _kill(pipeline, fault.service)
    points.disarm(fault.point)
    say("killed")
    stack.restart(pipeline, fault.service, say=NOOP, timeout_s=240)  # what Cloud Run or systemd does
    say("restarted")
    picked_up = wait_for(lambda: fault.picked_up(db, job_id), timeout_s=600, interval_s=0.5)
    say(f"picked up again {picked_up - killed_at:.1f}s after the kill")
    job = client.wait(db, job_id, timeout_s=600)
    assert job is not None
    say(f"job {job['status']}")
    return Outcome(job, picked_up - killed_at)


@pytest.mark.timeout(1500)
def test_each_service_killed_inside_its_handler_recovers_and_the_job_completes_once(
    pipeline: stack.StackConfig,
    failpoints: Failpoints,
    recording: str,
    hooks: WebhookReceiver,
    team_channel: WebhookReceiver,
) -> None:
    """SIGKILL ingest while normalising, diarization while the engine runs, post-processing between writing
    the results and announcing them, notification between its two channels, the projector inside its
    transaction; all at once, each on its own job, next to an undisturbed job of the same recording."""
    run = uuid.uuid4().hex[:8]
    db = firestore.Client(project=pipeline.project)
    baseline = f"fault-baseline-{run}"
    _start_job(pipeline, baseline, recording, hooks.url(f"/hook/{baseline}"))
    with ThreadPoolExecutor(max_workers=len(FAULTS)) as pool:
        futures = {
            fault.service: pool.submit(
                _crash_and_recover,
                pipeline,
                failpoints,
                fault,
                f"fault-{fault.service}-{run}",
                recording,
                hooks.url(f"/hook/fault-{fault.service}-{run}"),
            )
            for fault in FAULTS
        }
        outcomes = {service: future.result() for service, future in futures.items()}
    undisturbed = client.wait(db, baseline, timeout_s=300)
    assert undisturbed is not None and undisturbed["status"] == "COMPLETED", undisturbed
    expected = _comparable(_settled(db, baseline))
    key = pipeline.webhook_signing_key()
    assert key
    recoveries = {service: round(o.recovery_s, 1) for service, o in outcomes.items()}
    print(f"picked up again after the crash (s): {recoveries}")
    for service, outcome in outcomes.items():
        job_id = outcome.job["job_id"]
        assert outcome.job["status"] == "COMPLETED", (service, outcome.job)
        types = [e["type"] for e in jobstore.job_events(db, job_id)]
        assert types.count(events.JobCompleted.TYPE) == 1, (service, types)
        assert types.count(events.DiarizationCompleted.TYPE) == 1, (service, types)
        if service == "diarization":  # the engine ran again, and the second run's reports replaced the first's
            assert outcome.job["attempts"]["diarization"] >= 2 and outcome.job["progress"]["attempt"] >= 2, outcome.job
        # One delivery per channel: the producer's webhook (signed) and the team's channel.
        webhook = wait_for(lambda job_id=job_id: _requests_for(hooks, job_id), timeout_s=60)
        team = wait_for(lambda job_id=job_id: _requests_for(team_channel, job_id), timeout_s=60)
        assert len(webhook) == 1 and len(team) == 1, (service, len(webhook), len(team))
        (_, headers, body) = webhook[0]
        assert verify(body, headers["Speakerline-Signature"], key, int(time.time()))
        assert _comparable(_settled(db, job_id)) == expected, service
        assert outcome.recovery_s <= RECOVERY_S, (service, recoveries)
    assert all(s.healthy for s in stack.status(pipeline) if s.kind == "service")


def _cli(pipeline: stack.StackConfig, *args: str) -> subprocess.CompletedProcess[str]:
    speakerline = str(Path(sys.executable).with_name("speakerline"))
    env = {**os.environ, **pipeline.emulator_env()}
    return subprocess.run([speakerline, *args], env=env, capture_output=True, text=True, timeout=300)


def _dead_letters(pipeline: stack.StackConfig, subscription: str, job_id: str) -> list[dict[str, Any]]:
    done = _cli(pipeline, "dlq", "list", "--subscription", subscription, "--job", job_id, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def _replay(pipeline: stack.StackConfig, subscription: str, job_id: str) -> None:
    done = _cli(pipeline, "dlq", "replay", "--subscription", subscription, "--job", job_id, "--execute")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout[: done.stdout.rindex("}") + 1])["replayed"], done.stdout


def test_a_poison_message_is_dead_lettered_without_holding_up_other_jobs_and_a_replay_completes_it_once(
    pipeline: stack.StackConfig, failpoints: Failpoints, recording: str, hooks: WebhookReceiver
) -> None:
    """Post-processing raises on every delivery of one job's event (a poison message): it is retried with
    backoff, dead-lettered after the subscription's attempts, the job FAILED with a reason; another job on the
    same subscription completes meanwhile. With the cause removed, `speakerline dlq replay` completes it, once."""
    run = uuid.uuid4().hex[:8]
    db = firestore.Client(project=pipeline.project)
    poisoned, healthy = f"poison-{run}", f"poison-neighbour-{run}"
    failpoints.arm("postprocess.outputs", poisoned, action="raise")
    try:
        _start_job(pipeline, poisoned, recording, hooks.url(f"/hook/{poisoned}"))
        _start_job(pipeline, healthy, recording, hooks.url(f"/hook/{healthy}"))
        failed = client.wait(db, poisoned, timeout_s=300)
        assert failed is not None and failed["status"] == "FAILED", failed
        assert failed["error"]["code"] == "postprocess_error" and failed["error"]["message"]
        assert len(failpoints.hits("postprocess.outputs", poisoned)) == 5  # max_delivery_attempts, then no more
        neighbour = client.wait(db, healthy, timeout_s=300)
        assert neighbour is not None and neighbour["status"] == "COMPLETED", neighbour
        stages = neighbour["stages"]
        assert (stages["completed_at"] - stages["diarized_at"]).total_seconds() < 15  # not queued behind it
        wait_for(lambda: _dead_letters(pipeline, "postprocess-diarization", poisoned), timeout_s=60)
    finally:
        failpoints.disarm("postprocess.outputs")  # the cause is removed
    _replay(pipeline, "postprocess-diarization", poisoned)
    job = wait_for(lambda: (j := jobstore.get_job(db, poisoned)) and j["status"] == "COMPLETED" and j, timeout_s=120)
    types = [e["type"] for e in jobstore.job_events(db, poisoned)]
    assert types.count(events.JobCompleted.TYPE) == 1, types
    assert job["result"]["summary"]["num_speakers"] == neighbour["result"]["summary"]["num_speakers"]
    assert len(wait_for(lambda: _requests_for(hooks, poisoned), timeout_s=60)) == 2  # job.failed, job.completed
    assert not _dead_letters(pipeline, "postprocess-diarization", poisoned)


def test_a_failing_webhook_is_dead_lettered_then_replayed_and_delivered_exactly_once(
    pipeline: stack.StackConfig, recording: str, team_channel: WebhookReceiver
) -> None:
    """The producer's endpoint answers 500: retries with backoff, a retriable notification.failed, the job
    outcome in the notification subscription's dead letters. The endpoint recovers, ops replay: the webhook is
    delivered once, signed; the team channel, which worked all along, got it once."""
    endpoint = WebhookReceiver()
    endpoint.status = 500
    try:
        job_id = f"webhook-down-{uuid.uuid4().hex[:8]}"
        db = firestore.Client(project=pipeline.project)
        _start_job(pipeline, job_id, recording, endpoint.url(f"/hook/{job_id}"))
        job = client.wait(db, job_id, timeout_s=300)
        assert job is not None and job["status"] == "COMPLETED", job
        wait_for(lambda: _dead_letters(pipeline, "notification-job-outcomes", job_id), timeout_s=120)
        failures = len(endpoint.requests)
        assert failures == 5  # one per delivery attempt, with backoff
        failed = [n for n in jobstore.get_job(db, job_id)["notifications"] if n["status"] == "failed"]  # type: ignore[index]
        assert failed and failed[-1]["channel"] == "webhook"
        endpoint.status = 200  # the endpoint recovers
        _replay(pipeline, "notification-job-outcomes", job_id)
        wait_for(lambda: len(endpoint.requests) > failures, timeout_s=60)
        delivered = wait_for(
            lambda: [
                n
                for n in (jobstore.get_job(db, job_id) or {}).get("notifications") or []
                if n["channel"] == "webhook" and n["status"] == "delivered"
            ],
            timeout_s=60,
        )
        assert len(delivered) == 1
        assert len(endpoint.requests) == failures + 1  # exactly once after recovering
        (_, headers, body) = endpoint.requests[-1]
        key = pipeline.webhook_signing_key()
        assert key and verify(body, headers["Speakerline-Signature"], key, int(time.time()))
        assert len(_requests_for(team_channel, job_id)) == 1  # the ledger: not sent again on the retries
    finally:
        endpoint.server.shutdown()


def _stable(measure: Callable[[], Any], quiet_s: float = 5.0, timeout_s: float = 180.0) -> Any:
    """`measure()` once it has not changed for `quiet_s` (how long the stack has been idle for this job)."""
    deadline = time.monotonic() + timeout_s
    last, since = measure(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = measure()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    raise AssertionError(f"still changing after {timeout_s}s: {last}")


def _handled(pipeline: stack.StackConfig, service: str, job_id: str) -> int:
    """How many deliveries of the job's events the service has finished (its JSON log lines)."""
    log = pipeline.logs / f"{service}.log"
    marks = ('"event handled"', '"event type not handled here; acknowledged"')
    lines = log.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if job_id in line and any(mark in line for mark in marks))


def test_every_event_delivered_twice_in_shuffled_order_changes_no_output_and_no_projection(
    pipeline: stack.StackConfig, recording: str, hooks: WebhookReceiver, team_channel: WebhookReceiver
) -> None:
    """Pub/Sub delivers at least once and in any order: after a job completed, every one of its events is
    published again, twice, shuffled. Handlers run again (idempotently: same event ids), the projector applies
    nothing new, the results are byte for byte the same, and no receiver hears of the job again."""
    job_id = f"duplicates-{uuid.uuid4().hex[:8]}"
    db = firestore.Client(project=pipeline.project)
    storage_client = gcs.Client(project=pipeline.project)
    _start_job(pipeline, job_id, recording, hooks.url(f"/hook/{job_id}"))
    done = client.wait(db, job_id, timeout_s=300)
    assert done is not None and done["status"] == "COMPLETED", done
    before = _settled(db, job_id)
    output_uri = before["result"]["output_uri"]
    bucket, name = output_uri[5:].split("/", 1)
    output_before = storage_client.bucket(bucket).blob(name).download_as_bytes()
    recorded = jobstore.job_events(db, job_id)
    handled_before = _stable(lambda: _handled(pipeline, "notification", job_id))

    copies = [
        events.parse_json(
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": e["id"],
                    "source": e["source"],
                    "type": e["type"],
                    "time": e["time"].isoformat(),
                    "data": e["data"],
                }
            ).encode()
        )
        for e in recorded
    ] * 2
    random.Random(job_id).shuffle(copies)
    PubSubPublisher(pipeline.project, topology.load()).publish(copies)

    # Each job.completed copy, and each one post-processing makes again, reaches notification: 2 published here,
    # + 6 from post-processing (2 diarization.completed copies, + 4 from diarization runs: 2 audio.ingested
    # copies, + 2 from ingest re-running the 2 audio.uploaded copies).
    wait_for(lambda: _handled(pipeline, "notification", job_id) >= handled_before + 8, timeout_s=300)
    _stable(lambda: (_handled(pipeline, "projector", job_id), _handled(pipeline, "postprocess", job_id)))
    after = jobstore.get_job(db, job_id)
    assert after is not None
    assert _comparable(after) == _comparable(before)
    assert after["result"] == before["result"] and after["stages"] == before["stages"]
    assert {e["id"] for e in jobstore.job_events(db, job_id)} - {e["id"] for e in recorded} <= {
        e["id"] for e in jobstore.job_events(db, job_id) if e["type"] == events.DiarizationProgress.TYPE
    }  # only progress reports may be new (best effort, timed by the engine's run)
    assert storage_client.bucket(bucket).blob(name).download_as_bytes() == output_before
    assert len(_requests_for(hooks, job_id)) == 1 and len(_requests_for(team_channel, job_id)) == 1


def test_storage_away_for_30_s_stalls_the_job_in_flight_which_then_completes(
    pipeline: stack.StackConfig, failpoints: Failpoints, recording: str, hooks: WebhookReceiver
) -> None:
    """fake-gcs-server stopped while the engine runs, started again 30 s later: the worker's write of the turns
    retries with backoff (the lease is kept meanwhile) and the job completes, on its first attempt."""
    job_id = f"storage-away-{uuid.uuid4().hex[:8]}"
    db = firestore.Client(project=pipeline.project)
    failpoints.arm("diarization.engine", job_id)
    _start_job(pipeline, job_id, recording, hooks.url(f"/hook/{job_id}"))
    wait_for(lambda: failpoints.hits("diarization.engine", job_id), timeout_s=300, interval_s=0.2)
    gcs_pid = stack._read_pid(pipeline, "gcs")
    assert gcs_pid is not None
    stack._stop_group(gcs_pid)
    failpoints.disarm("diarization.engine")  # the engine finishes while storage is away
    time.sleep(30)  # the outage
    stack.up(pipeline, say=NOOP, timeout_s=240)  # storage is back (the services were left running)
    job = client.wait(db, job_id, timeout_s=300)
    assert job is not None and job["status"] == "COMPLETED", job
    assert job["attempts"]["diarization"] == 1, job["attempts"]
    types = [e["type"] for e in jobstore.job_events(db, job_id)]
    assert types.count(events.JobCompleted.TYPE) == 1
    assert all(s.healthy for s in stack.status(pipeline))
