"""What the fault tests share: the stack's failpoints file, starting a job by publishing its `audio.uploaded`, and
reading back what the job's events, document and webhook receivers show."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.cloud import firestore

from speakerline import events, topology
from speakerline.events import models
from speakerline.pubsub import PubSubPublisher
from speakerline_tools import jobstore, stack
from tests.conftest import WebhookReceiver

from ..integration.helpers import wait_for

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


def start_job(pipeline: stack.StackConfig, job_id: str, uri: str, webhook: str) -> None:
    request = models.Request(input=models.Input(uri=uri), options=models.Options(), webhook_url=webhook)
    event = events.AudioUploaded.new(models.AudioUploadedV1Data(job_id=job_id, request=request), source="//e2e/faults")
    PubSubPublisher(pipeline.project, topology.load()).publish([event])


def events_of_type(db: firestore.Client, job_id: str, type_: str) -> list[dict[str, Any]]:
    return [e for e in jobstore.job_events(db, job_id) if e["type"] == type_]


def latest_time(found: list[dict[str, Any]]) -> float | None:
    return max(e["time"].timestamp() for e in found) if found else None


def comparable(job: dict[str, Any]) -> dict[str, Any]:
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


def requests_for(receiver: WebhookReceiver, job_id: str) -> list[tuple[str, dict[str, str], bytes]]:
    return [r for r in receiver.requests if job_id.encode() in r[2]]


def settled_job(db: firestore.Client, job_id: str, channels: int = 2) -> dict[str, Any]:
    """The job document once both channels' reports are projected."""

    def settled() -> dict[str, Any] | None:
        job = jobstore.get_job(db, job_id)
        return job if job and len(job.get("notifications") or []) >= channels else None

    found: dict[str, Any] = wait_for(settled, timeout_s=60)
    return found


def kill(pipeline: stack.StackConfig, service: str) -> float:
    pid = stack._read_pid(pipeline, service)
    assert pid is not None, service
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not stack._group_alive(pid), timeout_s=15)  # dead, not just signalled
    return time.time()
