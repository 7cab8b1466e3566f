"""Faults against the real stack (emulators + every service as its own process): every job completes exactly
once or fails with a reason, and what is left is ops' to replay.

Services are stopped exactly inside a handler with failpoints (`speakerline.failpoints`: the stack's services
read `SPEAKERLINE_FAILPOINTS_FILE`, armed here for one job id at a time), then SIGKILLed there: no chance to
nack, clean up or finish. Jobs are started by publishing `audio.uploaded` with a job id chosen here (the "publish an
event" way in of docs/using.md, "Submitting audio"), so that a point can be armed before the job exists. This
module: each service killed inside its handler; dead letters, duplicates and a storage outage:
test_faults_delivery.py; the failpoints and shared helpers: faults.py.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from google.cloud import firestore

from notification.signing import verify
from speakerline import events
from speakerline_tools import client, jobstore, stack
from tests.conftest import WebhookReceiver

from ..integration.helpers import wait_for
from .faults import (
    NOOP,
    RECOVERY_S,
    Failpoints,
    comparable,
    events_of_type,
    kill,
    latest_time,
    requests_for,
    settled_job,
    start_job,
)

pytestmark = pytest.mark.e2e


@dataclasses.dataclass(frozen=True)
class Fault:
    service: str
    point: str
    #: when the job was seen picked up again after the crash (epoch seconds), or None if not yet
    picked_up: Callable[[firestore.Client, str], float | None]


def _ingested(db: firestore.Client, job_id: str) -> float | None:
    return latest_time(events_of_type(db, job_id, events.AudioIngested.TYPE))


def _restarted_diarization(db: firestore.Client, job_id: str) -> float | None:
    started = events_of_type(db, job_id, events.DiarizationStarted.TYPE)
    return latest_time([e for e in started if e["data"]["attempt"] >= 2])


def _completed(db: firestore.Client, job_id: str) -> float | None:
    return latest_time(events_of_type(db, job_id, events.JobCompleted.TYPE))


def _team_channel_notified(db: firestore.Client, job_id: str) -> float | None:
    delivered = events_of_type(db, job_id, events.NotificationDelivered.TYPE)
    return latest_time([e for e in delivered if e["data"]["channel"] == "slack"])


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
    start_job(pipeline, job_id, uri, hook)
    wait_for(lambda: points.hits(fault.point, job_id), timeout_s=300, interval_s=0.2)
    say(f"inside {fault.point}")
    killed_at = kill(pipeline, fault.service)
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
    start_job(pipeline, baseline, recording, hooks.url(f"/hook/{baseline}"))
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
    expected = comparable(settled_job(db, baseline))
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
        webhook = wait_for(lambda job_id=job_id: requests_for(hooks, job_id), timeout_s=60)
        team = wait_for(lambda job_id=job_id: requests_for(team_channel, job_id), timeout_s=60)
        assert len(webhook) == 1 and len(team) == 1, (service, len(webhook), len(team))
        (_, headers, body) = webhook[0]
        assert verify(body, headers["Speakerline-Signature"], key, int(time.time()))
        assert comparable(settled_job(db, job_id)) == expected, service
        assert outcome.recovery_s <= RECOVERY_S, (service, recoveries)
    assert all(s.healthy for s in stack.status(pipeline) if s.kind == "service")
