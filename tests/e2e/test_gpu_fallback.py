"""End to end: the GPU path is down, and jobs still complete, on the diarization worker's embedded CPU engine.

The stack's diarization service is restarted as a Vertex AI dispatcher whose Vertex AI is a fake on 127.0.0.1
(`tests/diarization/fake_vertex.py`, REST): it refuses one job's custom job (429 RESOURCE_EXHAUSTED, as when the
region has no L4 quota left) and creates the other's, which then never leaves JOB_STATE_PENDING (no capacity).
Both jobs run at once; each must complete with the engine that ran and the reason it fell back, in the job
document and in job.completed. The service gets its normal environment back afterwards, whatever happened.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import google.cloud.storage as gcs
import pytest
from google.cloud import firestore

from speakerline import events
from speakerline.timeline import parse_rttm
from speakerline_tools import client, jobstore, stack
from tests.diarization import fake_vertex

from ..integration.helpers import wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample" / "conversation.flac"
REFERENCE_SPEAKERS = len({t.speaker for t in next(iter(parse_rttm(SAMPLE.with_suffix(".rttm").read_text()).values()))})
START_TIMEOUT_S = 5
REFUSED, PENDING = "gpu-refused", "gpu-pending"  # correlation ids: what the fake does with each job


def _behaviour(custom_job: dict[str, Any]) -> fake_vertex.Behaviour:
    correlation = fake_vertex.dispatched_event(custom_job).data.request.correlation_id
    return fake_vertex.REFUSE if correlation == REFUSED else fake_vertex.PENDING


def _job_completed(db: firestore.Client, job_id: str) -> dict[str, Any] | None:
    return next((e for e in jobstore.job_events(db, job_id) if e["type"] == events.JobCompleted.TYPE), None)


def test_jobs_complete_on_the_cpu_engine_when_the_gpu_path_is_down(pipeline: stack.StackConfig) -> None:
    with fake_vertex.serve(_behaviour) as vertex:
        try:
            stack.restart(
                pipeline,
                "diarization",
                env={
                    "SPEAKERLINE_ENGINE": "vertex",
                    "SPEAKERLINE_VERTEX_API_ENDPOINT": vertex.url,
                    "SPEAKERLINE_VERTEX_REGION": "us-central1",
                    "SPEAKERLINE_VERTEX_IMAGE": "img",
                    "SPEAKERLINE_GPU_START_TIMEOUT_S": str(START_TIMEOUT_S),
                },
                say=lambda _: None,
            )
            storage = gcs.Client(project=pipeline.project)
            submitted = {
                reason: client.submit(storage, SAMPLE, options={}, correlation_id=reason).job_id
                for reason in (REFUSED, PENDING)
            }
            db = firestore.Client(project=pipeline.project)
            waited = {reason: client.wait(db, job_id, timeout_s=300) for reason, job_id in submitted.items()}
        finally:
            stack.restart(pipeline, "diarization", say=lambda _: None)  # its normal environment again

        # Vertex AI was asked for both jobs; the one it created but never started was cancelled.
        asked = sorted(str(fake_vertex.dispatched_event(body).data.request.correlation_id) for body in vertex.creates)
        assert asked == sorted(submitted)
        (created,) = vertex.jobs
        assert vertex.cancels == [created] and vertex.gets

    jobs: dict[str, dict[str, Any]] = {}
    for reason, found in waited.items():
        assert found is not None and found["status"] == "COMPLETED", (reason, found)
        jobs[reason] = found
    expected = {REFUSED: "gpu_dispatch_refused", PENDING: "gpu_start_timeout"}
    for reason, job in jobs.items():
        engine = job["engine"]
        assert engine["name"] == "embedded", (reason, engine)
        fallback = engine["fallback"]
        assert (fallback["from"], fallback["reason"]) == ("vertex", expected[reason]), (reason, fallback)
        assert fallback["message"]
        assert job["result"]["summary"]["num_speakers"] == REFERENCE_SPEAKERS

        completed = wait_for(partial(_job_completed, db, job["job_id"]), timeout_s=30)
        assert completed["data"]["engine"] == engine
    assert "429" in jobs[REFUSED]["engine"]["fallback"]["message"]
    assert f"within {START_TIMEOUT_S} s" in jobs[PENDING]["engine"]["fallback"]["message"]

    # The pending job first showed as handed to Vertex AI, then as taken back by the worker.
    started = [
        e["data"]["engine"]["name"]
        for e in jobstore.job_events(db, jobs[PENDING]["job_id"])
        if e["type"] == events.DiarizationStarted.TYPE
    ]
    assert started == ["vertex", "embedded"]
