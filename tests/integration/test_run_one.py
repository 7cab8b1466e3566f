"""`python -m speakerline.worker diarization --envelope FILE`: what a Vertex AI custom job runs, against the
emulators, on the push envelope the dispatcher sends it (`bootstrap.run_envelope`)."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import google.cloud.pubsub_v1 as pubsub_v1
import google.cloud.storage as gcs
import pytest
import soundfile as sf

from diarization.engines.vertex import push_envelope
from speakerline import events, topology
from speakerline.events import DiarizationCompleted, DiarizationProgress, DiarizationStarted
from speakerline.timeline import turns_from_json
from speakerline_tools.stack import StackConfig

from .helpers import pull, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample" / "conversation.flac"


def test_the_envelope_worker_diarizes_an_ingested_event_and_publishes_the_result(
    emulators: StackConfig, tmp_path: Path, example, unique: str
) -> None:  # type: ignore[no-untyped-def]
    audio, rate = sf.read(SAMPLE, dtype="int16")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(rate)
        wav.writeframes(audio.tobytes())
    work = topology.load().bucket("work")
    gcs.Client(project=emulators.project).bucket(work).blob(f"jobs/{unique}/audio.wav").upload_from_string(
        buffer.getvalue(), content_type="audio/wav"
    )
    data = example("audio.ingested")
    data["job_id"] = f"vertex-{unique}"
    data["audio"].update(uri=f"gs://{work}/jobs/{unique}/audio.wav", duration_s=len(audio) / rate)
    data["request"]["options"] = {"num_speakers": 3}
    event = events.AudioIngested.new(events.models.AudioIngestedV1Data.model_validate(data), source="//tests/vertex")
    (sub,) = topology.load().subscriptions_of("diarization")
    envelope_file = tmp_path / "envelope.json"
    envelope_file.write_text(json.dumps(push_envelope(event, sub.name)))  # what the Vertex dispatcher sends

    subscriber = pubsub_v1.SubscriberClient()
    probe = f"run-one-{unique}"
    subscriber.create_subscription(request={"name": subscriber.subscription_path(emulators.project, probe),
                                            "topic": f"projects/{emulators.project}/topics/diarization"})  # fmt: skip
    env = {**os.environ, **emulators.emulator_env(), "SPEAKERLINE_ENGINE": "embedded", "HF_HUB_OFFLINE": "1",
           "PYANNOTE_METRICS_ENABLED": "false"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "speakerline.worker", "diarization", "--envelope", str(envelope_file)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    received: list[events.AnyEvent] = []

    def completion_arrived() -> bool:
        batch = pull(emulators.project, probe, 1, timeout_s=2)
        received.extend(e for e in (events.parse_pubsub(m.data, dict(m.attributes)) for m in batch)
                        if e.job_id == data["job_id"])  # fmt: skip
        return any(isinstance(e, DiarizationCompleted) for e in received)

    wait_for(completion_arrived, timeout_s=60)
    types = [e.TYPE for e in received]
    # started once, completed once, and the progress reports of the run in between
    assert types.count(DiarizationStarted.TYPE) == 1
    assert types.count(DiarizationCompleted.TYPE) == 1
    assert set(types) - {DiarizationStarted.TYPE, DiarizationCompleted.TYPE} == {DiarizationProgress.TYPE}
    completed = next(e for e in received if isinstance(e, DiarizationCompleted)).payload()
    assert completed["result"]["num_speakers"] == 3
    assert completed["engine"]["name"] == "embedded"
    # The turns JSON carries the engine's exclusive timeline beside the raw turns, like the streaming worker's.
    bucket, name = completed["result"]["turns_uri"][5:].split("/", 1)
    raw = json.loads(gcs.Client(project=emulators.project).bucket(bucket).blob(name).download_as_bytes())
    assert len(raw["segments"]) == completed["result"]["num_turns"]
    assert len(raw["exclusive_segments"]) == completed["result"]["num_exclusive_turns"] > 0
    exclusive = turns_from_json(raw["exclusive_segments"])
    assert all(after.start >= before.end for before, after in itertools.pairwise(exclusive))
    assert {t.speaker for t in exclusive} <= {s["speaker"] for s in raw["segments"]}
