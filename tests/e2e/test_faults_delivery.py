"""Faults against the real stack in delivery: a poison message and a failing webhook dead-lettered then replayed
once, every event delivered twice in shuffled order, storage away for 30 s (the crashes: test_faults.py; the
failpoints and shared helpers: faults.py)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import google.cloud.storage as gcs
import pytest
from google.cloud import firestore

from notification.signing import verify
from speakerline import events, topology
from speakerline.pubsub import PubSubPublisher
from speakerline_tools import client, jobstore, stack
from tests.conftest import WebhookReceiver

from ..integration.helpers import wait_for
from .faults import (
    NOOP,
    Failpoints,
    comparable,
    requests_for,
    settled_job,
    start_job,
)

pytestmark = pytest.mark.e2e


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
        start_job(pipeline, poisoned, recording, hooks.url(f"/hook/{poisoned}"))
        start_job(pipeline, healthy, recording, hooks.url(f"/hook/{healthy}"))
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
    assert len(wait_for(lambda: requests_for(hooks, poisoned), timeout_s=60)) == 2  # job.failed, job.completed
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
        start_job(pipeline, job_id, recording, endpoint.url(f"/hook/{job_id}"))
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
        assert len(requests_for(team_channel, job_id)) == 1  # the ledger: not sent again on the retries
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
    start_job(pipeline, job_id, recording, hooks.url(f"/hook/{job_id}"))
    done = client.wait(db, job_id, timeout_s=300)
    assert done is not None and done["status"] == "COMPLETED", done
    before = settled_job(db, job_id)
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
    assert comparable(after) == comparable(before)
    assert after["result"] == before["result"] and after["stages"] == before["stages"]
    assert {e["id"] for e in jobstore.job_events(db, job_id)} - {e["id"] for e in recorded} <= {
        e["id"] for e in jobstore.job_events(db, job_id) if e["type"] == events.DiarizationProgress.TYPE
    }  # only progress reports may be new (best effort, timed by the engine's run)
    assert storage_client.bucket(bucket).blob(name).download_as_bytes() == output_before
    assert len(requests_for(hooks, job_id)) == 1 and len(requests_for(team_channel, job_id)) == 1


def test_storage_away_for_30_s_stalls_the_job_in_flight_which_then_completes(
    pipeline: stack.StackConfig, failpoints: Failpoints, recording: str, hooks: WebhookReceiver
) -> None:
    """fake-gcs-server stopped while the engine runs, started again 30 s later: the worker's write of the turns
    retries with backoff (the lease is kept meanwhile) and the job completes, on its first attempt."""
    job_id = f"storage-away-{uuid.uuid4().hex[:8]}"
    db = firestore.Client(project=pipeline.project)
    failpoints.arm("diarization.engine", job_id)
    start_job(pipeline, job_id, recording, hooks.url(f"/hook/{job_id}"))
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
