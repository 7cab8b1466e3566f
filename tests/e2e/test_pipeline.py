"""End to end: the real emulators, every service as its own process (`stack up`), real speech, the CLI.

The whole product path runs here: upload → GCS finalize notification → ingest → diarization (embedded CPU
engine) → post-processing → notification (signed webhook to a local receiver) → projector → Firestore, and
`speakerline submit --wait --json` as a producer would run it.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import google.cloud.storage as gcs
import pytest
import soundfile
from google.cloud import firestore

from speakerline import events, topology
from speakerline.pubsub import PubSubPublisher
from speakerline.timeline import parse_rttm
from speakerline_tools import client, evaluation, jobstore, stack

from ..integration.helpers import pull, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample" / "conversation.flac"
REFERENCE = next(iter(parse_rttm(SAMPLE.with_suffix(".rttm").read_text()).values()))
DER_TARGET = 0.20


def _cli(
    cfg: stack.StackConfig, *args: str, timeout_s: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cfg.emulator_env(), **(env or {})}
    speakerline = str(Path(sys.executable).with_name("speakerline"))
    return subprocess.run([speakerline, *args], env=env, capture_output=True, text=True, timeout=timeout_s)


def _assert_good_diarization(segments: list[dict], expected_speakers: int) -> float:
    hypothesis = client.turns(segments)
    assert len({t.speaker for t in hypothesis}) == expected_speakers
    der = evaluation.timeline_der(REFERENCE, hypothesis, soundfile.info(str(SAMPLE)).duration)
    assert der <= DER_TARGET, f"DER {der:.1%} above {DER_TARGET:.0%}"
    return der


def _assert_exclusive_timeline(output: dict) -> None:  # type: ignore[type-arg]
    """output.json's one-speaker-at-a-time timeline: present, never overlapping, the segments' speakers."""
    items = output["exclusive_segments"]
    assert items and all(set(item) == {"speaker", "start", "end", "duration"} for item in items)
    exclusive = client.turns(items)
    for before, after in itertools.pairwise(exclusive):
        assert after.start >= before.end, f"exclusive segments overlap: {before} {after}"
    assert {t.speaker for t in exclusive} == set(output["speakers"]) == {s["speaker"] for s in output["segments"]}


def test_cli_submission_is_diarized_end_to_end(pipeline: stack.StackConfig, webhook_receiver) -> None:  # type: ignore[no-untyped-def]
    done = _cli(
        pipeline,
        "submit",
        str(SAMPLE),
        "--wait",
        "--json",
        "--webhook",
        webhook_receiver.url("/hook"),
        "--correlation-id",
        "e2e-gcs",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    job = json.loads(done.stdout)
    assert job["status"] == "COMPLETED"
    assert job["request"]["correlation_id"] == "e2e-gcs"
    reference_speakers = len({t.speaker for t in REFERENCE})
    _assert_good_diarization(job["result"]["segments"], reference_speakers)
    assert job["result"]["summary"]["num_speakers"] == reference_speakers
    assert all(
        job["stages"][k]
        for k in ("received_at", "ingested_at", "diarization_started_at", "diarized_at", "completed_at")
    )
    assert job["engine"]["name"] == "embedded"

    # The results are where the event says, in the lineage format.
    blobs = gcs.Client(project=pipeline.project)
    bucket, name = job["result"]["output_uri"][5:].split("/", 1)
    output = json.loads(blobs.bucket(bucket).blob(name).download_as_bytes())
    assert output["segments"] == job["result"]["segments"]
    assert set(output["segments"][0]) == {"speaker", "start", "end", "duration"}
    _assert_exclusive_timeline(output)
    assert job["result"]["summary"]["num_exclusive_segments"] == len(output["exclusive_segments"])

    # The producer's webhook got the signed job.completed, and the projector recorded the delivery.
    from notification.signing import verify

    wait_for(lambda: webhook_receiver.requests, timeout_s=30)
    _, headers, body = webhook_receiver.requests[0]
    # Verified with the key the stack generated, read the way docs/events.md tells a receiver to: `stack env`.
    exports = _cli(pipeline, "stack", "env", env={"SPEAKERLINE_STACK_DIR": str(pipeline.root)}).stdout
    (key,) = [shlex.split(line)[1].split("=", 1)[1] for line in exports.splitlines() if "WEBHOOK_SIGNING_KEY=" in line]
    assert key == pipeline.webhook_signing_key() and len(key) >= 32
    assert verify(body, headers["Speakerline-Signature"], key, int(time.time()))
    # What a receiver does with the body (docs/events.md, "Consuming job outcomes in Python"): one call, typed.
    received = events.parse_json(body)
    assert isinstance(received, events.JobCompleted) and received.job_id == job["job_id"]
    db = firestore.Client(project=pipeline.project)
    delivered = wait_for(lambda: (jobstore.get_job(db, job["job_id"]) or {}).get("notifications"), timeout_s=30)
    assert delivered[0]["channel"] == "webhook" and delivered[0]["status"] == "delivered"
    # The worker reported its progress while the engine ran, and the projector kept the furthest report.
    progress = wait_for(lambda: (jobstore.get_job(db, job["job_id"]) or {}).get("progress"), timeout_s=30)
    assert 0 < progress["fraction"] <= 1 and progress["audio_s"] == pytest.approx(job["audio"]["duration_s"], abs=0.01)
    types = [e["type"] for e in jobstore.job_events(db, job["job_id"])]
    for expected in (
        "audio.uploaded",
        "audio.ingested",
        "diarization.started",
        "diarization.progress",
        "diarization.completed",
        "job.completed",
        "notification.delivered",
    ):
        assert events.catalog().get(f"io.speakerline.{expected}.v1").type in types


def test_producer_published_event_with_a_known_speaker_count(pipeline: stack.StackConfig) -> None:
    """A producer that does not use the uploads bucket: its own object, its own job id, an event."""
    storage = gcs.Client(project=pipeline.project)
    work = topology.load().bucket("work")
    name = f"producer-drop/{uuid.uuid4().hex}.flac"
    storage.bucket(work).blob(name).upload_from_filename(str(SAMPLE))
    job_id = f"producer-{uuid.uuid4().hex[:12]}"
    speakers = len({t.speaker for t in REFERENCE})
    models = events.models
    request = models.Request(
        input=models.Input(uri=f"gs://{work}/{name}"),
        options=models.Options(num_speakers=speakers),
        submitted_by="e2e-producer",
    )
    event = events.AudioUploaded.new(
        models.AudioUploadedV1Data(job_id=job_id, request=request), source="//producers/e2e"
    )
    PubSubPublisher(pipeline.project, topology.load()).publish([event])
    db = firestore.Client(project=pipeline.project)
    job = client.wait(db, job_id, timeout_s=600)
    assert job is not None and job["status"] == "COMPLETED", job
    done = _cli(pipeline, "jobs", "get", job_id, "--json")
    assert done.returncode == 0, done.stderr
    _assert_good_diarization(json.loads(done.stdout)["result"]["segments"], speakers)


def test_bad_upload_is_rejected_with_a_reason_and_a_failing_exit_code(pipeline: stack.StackConfig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fake = tmp_path / "meeting.wav"
    fake.write_text("these are my meeting notes, not a recording\n" * 20)
    done = _cli(pipeline, "submit", str(fake), "--wait", "--json", timeout_s=300)
    assert done.returncode == 1, done.stderr[-2000:]
    job = json.loads(done.stdout)
    assert job["status"] == "REJECTED"
    assert job["error"]["code"] == "unsupported_format"
    assert job["error"]["stage"] == "ingest" and job["error"]["message"]
    listed = _cli(pipeline, "jobs", "list", "--status", "REJECTED", "--json")
    assert job["job_id"] in [j["job_id"] for j in json.loads(listed.stdout)]


def test_poison_messages_on_every_service_input_are_dead_lettered(pipeline: stack.StackConfig) -> None:
    topo = topology.load()
    publisher = PubSubPublisher(pipeline.project, topo)
    marker = uuid.uuid4().hex
    for topic in {s.topic for s in topo.subscriptions.values()}:
        publisher.publish_raw(topic, b"definitely not a cloudevent", {"e2e-marker": marker})
    for sub in topo.subscriptions.values():

        def found(sub_name: str = sub.dead_letter_subscription) -> list:  # type: ignore[type-arg]
            return [
                m for m in pull(pipeline.project, sub_name, 1, timeout_s=2) if m.attributes.get("e2e-marker") == marker
            ]

        (message,) = wait_for(found, timeout_s=60)
        assert message.attributes["speakerline-dead-letter-subscription"] == sub.name
        assert message.attributes["speakerline-dead-letter-reason"] in ("not_a_cloudevent", "not_a_gcs_notification")
    # The services are still up: nothing crash-looped.
    assert all(s.healthy for s in stack.status(pipeline) if s.kind == "service")
