"""Bad input against the real stack: every case gets a reason code and a human message, nothing crashes, nothing is
redelivered without end, no job is lost, and the stack is healthy afterwards.

Three ways in:

- A. the uploads bucket (objects and metadata written as `speakerline_tools.client.submit` writes them): files that
  are not audio, broken, empty, silent, over the limits, of an unsupported codec, video without sound, a WAV header
  that lies, odd object names, metadata that is not a number or contradicts itself. Every case is uploaded at once
  by one module fixture, which then waits for all the jobs; each case is then one test.
- B. CloudEvents published straight to every topic of infra/topology.yaml, each broken in one way: expected in the
  subscription's dead-letter topic at once, with `speakerline-dead-letter-reason`, exactly once.
- C. the HTTP API: malformed bodies, wrong types, unknown fields, oversized bodies, path traversal, bad and revoked
  keys: a 4xx `application/problem+json` with a reason code, never a 5xx.

The outcome of every case is written as a markdown table to `.stack/bad-input-report.md` (for docs/operations.md,
"Bad input").

The size and duration limit cases need the stack's limits lowered (a file over 4 GiB or 24 h is no test fixture):
`SPEAKERLINE_MAX_UPLOAD_BYTES` and `SPEAKERLINE_MAX_DURATION_S` in the pipeline fixture's `service_env` (or this
process's environment, which the stack passes on); the files are built just over whatever is configured.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import struct
import time
import uuid
import wave
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import google.cloud.pubsub_v1 as pubsub_v1
import google.cloud.storage as gcs
import grpc
import numpy as np
import pytest
import requests
import soundfile
from google.cloud import firestore
from google.cloud.pubsub_v1.publisher.exceptions import MessageTooLargeError
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from speakerline import apikeys, events, topology, uploads
from speakerline.jobs import JobStatus, job_id_for_object
from speakerline.pubsub import PubSubPublisher
from speakerline_tools import client, jobstore, stack

from .conftest import ApiHandle

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SPEECH = REPO / "tests" / "data" / "sample" / "conversation.flac"
SCHEMAS = REPO / "schemas" / "events"
REPORT = REPO / ".stack" / "bad-input-report.md"
MIB = 1024 * 1024
#: What the stack's limits must be lowered to for the limit cases to be cheap (the lead sets them in service_env).
LIMIT_ENV = {"SPEAKERLINE_MAX_UPLOAD_BYTES": str(8 * MIB), "SPEAKERLINE_MAX_DURATION_S": "600"}
JOB_TIMEOUT_S = 300.0
DEAD_LETTER_TIMEOUT_S = 90.0


# --- the report ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    case: str
    path: str  # the way in: bucket, topic, API route
    expected: str
    observed: str = "(not observed)"
    shown: str = ""  # what the user sees
    answered: bool = False  # a reason code, or the expected completion
    lost: bool = False  # a job that never reached a terminal state


ROWS: dict[str, Row] = {}


def _record(row: Row) -> Row:
    ROWS[row.case] = row
    return row


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    """Writes the table of every case tried, whatever the tests' verdicts."""
    yield
    rows = list(ROWS.values())
    lines = [
        "| case | path in | expected | outcome (status + reason code) | what the user sees |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {r.case} | {_cell(r.path)} | {_cell(r.expected)} | {_cell(r.observed)} | {_cell(r.shown)} |"
            for r in rows
        ),
        "",
        f"Cases tried: {len(rows)}; answered with a reason code or the expected completion: "
        f"{sum(r.answered for r in rows)}; jobs lost: {sum(r.lost for r in rows)}.",
    ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")


def _healthy(cfg: stack.StackConfig) -> None:
    unhealthy = [s.name for s in stack.status(cfg) if s.kind == "service" and not s.healthy]
    assert not unhealthy, f"services down after bad input: {unhealthy}"


# --- A. files through the uploads bucket ---------------------------------------------------------------------------


MAX_BYTES, MAX_DURATION = LIMIT_ENV


@dataclasses.dataclass(frozen=True)
class Limits:
    """The stack's lowered limits; None where a limit is not lowered enough for a small fixture."""

    max_bytes: int | None
    max_duration_s: float | None

    def lowered(self, env: str) -> bool:
        return (self.max_bytes if env == MAX_BYTES else self.max_duration_s) is not None


def _stack_limits(cfg: stack.StackConfig) -> Limits:
    env = {**os.environ, **cfg.service_env}  # what the stack hands its services
    max_bytes = int(env.get(MAX_BYTES) or 0) or None
    max_duration = float(env.get(MAX_DURATION) or 0) or None
    return Limits(
        max_bytes if max_bytes is not None and max_bytes <= 64 * MIB else None,
        max_duration if max_duration is not None and max_duration <= 3600 else None,
    )


def _speech(seconds: float, rate: int = 16000) -> np.ndarray:
    """Real speech (two speakers from 1 s on in the sample), mono float32."""
    audio, sample_rate = soundfile.read(str(SPEECH), dtype="float32", frames=round((1 + seconds) * 16000))
    assert sample_rate == 16000
    mono = audio if audio.ndim == 1 else audio.mean(axis=1)
    clip = mono[16000:]
    if rate != 16000:
        clip = np.interp(np.arange(round(seconds * rate)) * 16000 / rate, np.arange(len(clip)), clip)
    result: np.ndarray = clip.astype(np.float32)
    return result


def _tone(seconds: float, rate: int, freq: float = 220.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)).astype(np.float32)


def _wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def _encode(muxer: str, codec: str, samples: np.ndarray, rate: int, options: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format=muxer, options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        step = stream.codec_context.frame_size or 4096
        for start in range(0, len(samples), step):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + step].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _video_only() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            image = np.full((48, 64, 3), i * 20, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _lying_wav_header() -> bytes:
    """1.5 s of speech whose RIFF and data sizes claim about 2 GB (18 hours at 16 kHz)."""
    data = bytearray(_wav(_speech(1.5)))
    struct.pack_into("<I", data, 4, 0x7FFFFFF0)
    struct.pack_into("<I", data, 40, 0x7FFFFFE0)
    return bytes(data)


def _mp3_cut(xing: bool) -> bytes:
    mp3 = _encode("mp3", "libmp3lame", _speech(4.0, 22050), 22050, None if xing else {"write_xing": "0"})
    return mp3[: len(mp3) * 4 // 10]


def _over_size(limits: Limits) -> bytes:
    assert limits.max_bytes is not None
    header = _wav(np.zeros(0))
    return header + b"\x00" * (limits.max_bytes + 1 - len(header))


def _over_duration(limits: Limits) -> bytes:
    """Silence just over the limit: FLAC states the exact length in its header, and silence packs to ~100 KB."""
    assert limits.max_duration_s is not None
    return _encode("flac", "flac", np.zeros(round((limits.max_duration_s + 5) * 8000), dtype=np.float32), 8000)


def _silence_1s(_: Limits) -> bytes:
    return _wav(np.zeros(16000))


def _speech_3s(_: Limits) -> bytes:
    return _encode("flac", "flac", _speech(3.0), 16000)


def _long_folder(chars: int) -> str:
    """Folders filling `chars` characters, each part under the 255 bytes a file name may have (the emulator keeps
    objects as files; Cloud Storage itself allows 1024 bytes in all)."""
    parts, left = [], chars
    while left > 0:
        size = min(200, left) - 1
        parts.append("n" * max(size, 0) + "/")
        left -= size + 1
    return "".join(parts)


TEXT = b"Minutes of the Monday meeting: budget, hiring, the new office.\n" * 20


@dataclasses.dataclass(frozen=True)
class UploadCase:
    case: str
    file_name: str  # the last part of the object name (and the `filename` metadata)
    build: Callable[[Limits], bytes]
    status: str  # the expected terminal status
    code: str | None  # the expected error code (None: COMPLETED)
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    #: the object name below `submissions/<uuid>/` when not `file_name`
    folder: str = ""
    needs: str = ""  # the env var of the limit this case needs lowered
    note: str = ""  # the honest outcome, for the report


#: `submissions/<32 hex>/` + folders + `end.flac`: an object name of exactly 1000 characters
LONG_FOLDER = _long_folder(1000 - len("submissions/") - 33 - len("end.flac"))
UPLOAD_CASES = [
    UploadCase("text named .wav", "meeting.wav", lambda _: TEXT, "REJECTED", "unsupported_format"),
    UploadCase("empty file", "empty.wav", lambda _: b"", "REJECTED", "empty_file"),
    UploadCase("truncated MP3 (with its Xing index)", "cut.mp3", lambda _: _mp3_cut(True), "REJECTED", "undecodable"),
    UploadCase(
        "truncated MP3 (no index)",
        "cut-noindex.mp3",
        lambda _: _mp3_cut(False),
        "COMPLETED",
        None,
        note="an MP3 without a length index cut short is a shorter MP3: its 1.6 s are diarized",
    ),
    UploadCase("0-second WAV", "nothing.wav", lambda _: _wav(np.zeros(0)), "REJECTED", "too_short"),
    UploadCase("pure silence", "silence.wav", lambda _: _wav(np.zeros(32000)), "COMPLETED", None),
    UploadCase(
        "white noise",
        "noise.wav",
        lambda _: _wav(np.random.default_rng(7).uniform(-0.8, 0.8, 32000)),
        "COMPLETED",
        None,
        note="noise is not speech: the engine finds no speaker in it",
    ),
    UploadCase("over the size limit", "big.wav", _over_size, "REJECTED", "file_too_large", needs=MAX_BYTES),
    UploadCase("over the duration limit", "long.flac", _over_duration, "REJECTED", "too_long", needs=MAX_DURATION),
    UploadCase(
        "unsupported codec (AC-3 in MP4)",
        "surround.m4a",
        lambda _: _encode("mp4", "ac3", _tone(1.0, 48000), 48000),
        "REJECTED",
        "unsupported_format",
    ),
    UploadCase("video without audio", "screen.mp4", lambda _: _video_only(), "REJECTED", "no_audio_stream"),
    UploadCase(
        "WAV header claiming ~2 GB",
        "liar.wav",
        lambda _: _lying_wav_header(),
        "COMPLETED",
        None,
        note="FFmpeg bounds the declared length by the object's size: the 1.5 s present are diarized",
    ),
    UploadCase("object name with ..", "a..b.flac", _speech_3s, "COMPLETED", None, folder="../{id}-dots/"),
    UploadCase("object name in unicode", "Réunion 会議 🎙️.flac", _speech_3s, "COMPLETED", None),
    UploadCase("object name with spaces", " my  meeting  .flac", _speech_3s, "COMPLETED", None),
    UploadCase("object name of 1000 characters", "end.flac", _speech_3s, "COMPLETED", None, folder=LONG_FOLDER),
    *(
        UploadCase(f"metadata {label}", "options.wav", _silence_1s, "REJECTED", "invalid_options", metadata=metadata)
        for label, metadata in [
            ("num_speakers=three", {"num_speakers": "three"}),
            ("num_speakers=2.5", {"num_speakers": "2.5"}),
            ("num_speakers=1_0", {"num_speakers": "1_0"}),
            ("num_speakers=0", {"num_speakers": "0"}),
            ("num_speakers=1000", {"num_speakers": "1000"}),
            ("min_speakers > max_speakers", {"min_speakers": "5", "max_speakers": "2"}),
            ("num_speakers with a range", {"num_speakers": "2", "min_speakers": "1"}),
        ]
    ),
    UploadCase(
        "metadata webhook_url=ftp://…",
        "hook.wav",
        _silence_1s,
        "REJECTED",
        "invalid_metadata",
        metadata={"webhook_url": "ftp://hooks.example/x"},
    ),
    UploadCase(
        "metadata correlation_id of 300 characters",
        "corr.wav",
        _silence_1s,
        "REJECTED",
        "invalid_metadata",
        metadata={"correlation_id": "c" * 300},
    ),
    UploadCase(
        "metadata filename of 2000 characters",
        "named.wav",
        _silence_1s,
        "COMPLETED",
        None,
        metadata={"filename": "f" * 2000 + ".wav"},
        note="a display name: cut to the schema's 1024 characters",
    ),
]
MISSING_OBJECT = "notification for an object that does not exist"


@dataclasses.dataclass
class Submitted:
    case: UploadCase | None
    job_id: str
    uri: str
    job: dict[str, Any] | None = None
    skipped: str = ""  # why it could not be uploaded (a limit not lowered)


@pytest.fixture(scope="module")
def uploaded(pipeline: stack.StackConfig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Submitted]:
    """Every upload case in the bucket at once, then every job followed to its end."""
    limits = _stack_limits(pipeline)
    storage = gcs.Client(project=pipeline.project)
    bucket = topology.load().bucket("uploads")
    folder = tmp_path_factory.mktemp("bad-input")
    submitted: dict[str, Submitted] = {}
    for n, case in enumerate(UPLOAD_CASES):
        if case.needs and not limits.lowered(case.needs):
            submitted[case.case] = Submitted(case, "", "", skipped=case.needs)
            continue
        path = folder / f"{n:02d}-{case.file_name.strip() or 'x'}"
        path.write_bytes(case.build(limits))
        unique = uuid.uuid4().hex
        name = f"submissions/{unique}/{case.folder.format(id=unique)}{case.file_name}"
        blob = storage.bucket(bucket).blob(name)
        blob.metadata = {uploads.FILENAME: case.file_name, uploads.SUBMITTED_BY: "cli", **case.metadata}
        blob.upload_from_filename(str(path))
        job_id = job_id_for_object(bucket, name, str(blob.generation))
        submitted[case.case] = Submitted(case, job_id, f"gs://{bucket}/{name}")

    # A notification whose object is gone by the time ingest looks (deleted, or a forged notification).
    name = f"submissions/{uuid.uuid4().hex}/gone.wav"
    resource = {"bucket": bucket, "name": name, "generation": "1", "size": "1000", "metadata": {}}
    attributes = {"payloadFormat": "JSON_API_V1", "eventType": "OBJECT_FINALIZE", "bucketId": bucket, "objectId": name}
    PubSubPublisher(pipeline.project, topology.load()).publish_raw(
        uploads_topic(), json.dumps(resource).encode(), attributes
    )
    submitted[MISSING_OBJECT] = Submitted(None, job_id_for_object(bucket, name, "1"), f"gs://{bucket}/{name}")

    db = firestore.Client(project=pipeline.project)
    waiting = {key: s for key, s in submitted.items() if s.job_id}
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while waiting and time.monotonic() < deadline:
        for key, item in list(waiting.items()):
            item.job = jobstore.get_job(db, item.job_id)
            if item.job is not None and JobStatus(str(item.job["status"])).terminal:
                del waiting[key]
        time.sleep(0.5)
    return submitted


def uploads_topic() -> str:
    notification = topology.load().buckets["uploads"].notification
    assert notification is not None
    return notification.topic


def _outcome(job: dict[str, Any] | None) -> tuple[str, str]:
    """(status + reason code, what the user sees) of a job document."""
    if job is None:
        return "no job", "nothing"
    error = job.get("error") or {}
    if job["status"] == "COMPLETED":
        summary = (job.get("result") or {}).get("summary") or {}
        return "COMPLETED", f"{summary.get('num_speakers')} speaker(s), {summary.get('num_segments')} segment(s)"
    return f"{job['status']} {error.get('code', '')}".strip(), str(error.get("message", ""))


@pytest.mark.parametrize("case", UPLOAD_CASES, ids=lambda c: c.case)
def test_each_bad_upload_ends_with_a_reason(uploaded: dict[str, Submitted], case: UploadCase) -> None:
    item = uploaded[case.case]
    expected = f"{case.status} {case.code or ''}".strip()
    row = _record(Row(case.case, "bucket (`speakerline submit`)", expected))
    if item.skipped:
        row.observed = "not run: limit not lowered"
        pytest.fail(f"the stack's limit is not lowered: add {item.skipped}={LIMIT_ENV[item.skipped]} to service_env")
    job = item.job
    row.observed, row.shown = _outcome(job)
    row.answered = job is not None and job["status"] == case.status
    if case.note:
        row.shown = f"{row.shown} ({case.note})" if row.shown else case.note
    row.lost = job is None or not JobStatus(str(job["status"])).terminal
    assert job is not None, f"{case.case}: no job {item.job_id} for {item.uri}: the upload was lost"
    assert job["status"] == case.status, f"{case.case}: {job['status']} {job.get('error')}"
    if case.code is None:
        assert job["request"]["input"]["uri"] == item.uri  # the name travels unchanged, whatever it is
        filename = case.metadata.get(uploads.FILENAME, case.file_name)
        assert job["request"]["input"]["filename"] == filename[:1024]
        return
    error = job["error"]
    row.answered = bool(error.get("code")) and bool(error.get("message"))
    assert (error["stage"], error["code"], error["retriable"]) == ("ingest", case.code, False), error
    assert len(error["message"]) > 20 and "Traceback" not in error["message"], error["message"]


def test_silence_completes_with_no_speakers_and_no_segments(uploaded: dict[str, Submitted]) -> None:
    job = uploaded["pure silence"].job
    assert job is not None and job["status"] == "COMPLETED", job
    summary = job["result"]["summary"]
    assert (summary["num_speakers"], summary["num_segments"], summary["speech_s"]) == (0, 0, 0), summary


def test_speech_under_odd_names_is_diarized(uploaded: dict[str, Submitted]) -> None:
    for case in (
        "object name with ..",
        "object name in unicode",
        "object name with spaces",
        "object name of 1000 characters",
    ):
        job = uploaded[case].job
        assert job is not None and job["status"] == "COMPLETED", (case, job)
        assert job["result"]["summary"]["num_speakers"] >= 1, (case, job["result"]["summary"])
    assert len(uploaded["object name of 1000 characters"].uri.removeprefix("gs://speakerline-uploads/")) == 1000


def test_a_lying_header_and_a_cut_mp3_are_diarized_for_what_they_hold(uploaded: dict[str, Submitted]) -> None:
    liar = uploaded["WAV header claiming ~2 GB"].job
    assert liar is not None and liar["audio"]["duration_s"] == pytest.approx(1.5, abs=0.05), liar
    cut = uploaded["truncated MP3 (no index)"].job
    assert cut is not None and 1.0 < cut["audio"]["duration_s"] < 2.0, cut


def test_a_notification_for_a_missing_object_is_rejected(uploaded: dict[str, Submitted]) -> None:
    item = uploaded[MISSING_OBJECT]
    row = _record(Row(MISSING_OBJECT, f"topic {uploads_topic()} (GCS notification)", "REJECTED input_not_found"))
    row.observed, row.shown = _outcome(item.job)
    row.lost = item.job is None
    assert item.job is not None and item.job["status"] == "REJECTED", item.job
    assert item.job["error"]["code"] == "input_not_found"
    row.answered = True


def test_the_stack_is_healthy_after_the_uploads(pipeline: stack.StackConfig, uploaded: dict[str, Submitted]) -> None:
    lost = [
        key for key, s in uploaded.items() if s.job_id and (s.job is None or not JobStatus(s.job["status"]).terminal)
    ]
    assert lost == [], f"jobs not terminal within {JOB_TIMEOUT_S} s: {lost}"
    _healthy(pipeline)


# --- B. broken CloudEvents on every topic ---------------------------------------------------------------------------


def _example(event_type: str) -> dict[str, Any]:
    name = events.event_name(event_type)
    data: dict[str, Any] = json.loads((SCHEMAS / name / "v1.example.json").read_text())["data"]
    return data


@dataclasses.dataclass(frozen=True)
class Poison:
    case: str
    reason: str  # on a CloudEvent subscription
    make: Callable[[str, dict[str, str]], tuple[bytes, dict[str, str]]]  # (event type, valid attributes) -> message


def _without(key: str) -> Callable[[str, dict[str, str]], tuple[bytes, dict[str, str]]]:
    return lambda t, a: (json.dumps(_example(t)).encode(), {k: v for k, v in a.items() if k != key})


def _with(**attrs: str) -> Callable[[str, dict[str, str]], tuple[bytes, dict[str, str]]]:
    return lambda t, a: (json.dumps(_example(t)).encode(), {**a, **{k.replace("_", "-"): v for k, v in attrs.items()}})


# Python clients of the emulator cannot receive a message over gRPC's 4 MiB (googleapis/python-pubsub#3): the
# largest body a local consumer can refuse is just under it. See test_a_message_over_10_mb_is_refused_at_publish.
BIG_BODY = 4 * 1000 * 1000
POISONS = [
    Poison("missing ce-id", "not_a_cloudevent", _without("ce-id")),
    Poison("missing ce-source", "not_a_cloudevent", _without("ce-source")),
    Poison("missing ce-type", "not_a_cloudevent", _without("ce-type")),
    Poison("missing ce-specversion", "not_a_cloudevent", _without("ce-specversion")),
    Poison("ce-specversion 0.3", "unsupported_specversion", _with(ce_specversion="0.3")),
    Poison("ce-specversion 2.0", "not_a_cloudevent", _with(ce_specversion="2.0")),
    Poison("data not JSON", "malformed_data", lambda t, a: (b'{"job_id": "job_', a)),
    Poison("data failing the schema", "schema_violation", lambda t, a: (json.dumps({"job_id": 42}).encode(), a)),
    Poison(
        "unknown type", "unknown_event_type", lambda t, a: (b"{}", {**a, "ce-type": "io.speakerline.audio.exploded.v1"})
    ),
    Poison("unknown major version", "unknown_major_version", lambda t, a: (b"{}", {**a, "ce-type": t[:-1] + "2"})),
    Poison("another dataschema", "dataschema_mismatch", _with(ce_dataschema="https://example.com/other.json")),
    Poison("a 4 MB body", "malformed_data", lambda t, a: (b"x" * BIG_BODY, a)),
]
# Raw bodies on the bucket-notification topic, which carries GCS notifications, not CloudEvents.
GCS_ATTRIBUTES = {"payloadFormat": "JSON_API_V1", "eventType": "OBJECT_FINALIZE"}
GCS_POISONS = [
    ("GCS payloadFormat NONE", "not_a_gcs_notification", b"{}", {**GCS_ATTRIBUTES, "payloadFormat": "NONE"}),
    ("GCS OBJECT_DELETE", "unexpected_gcs_event", b"{}", {**GCS_ATTRIBUTES, "eventType": "OBJECT_DELETE"}),
    ("GCS body not JSON", "malformed_data", b"<xml/>", GCS_ATTRIBUTES),
    (
        "GCS body without a name",
        "malformed_data",
        b'{"bucket": "speakerline-uploads", "generation": "1"}',
        GCS_ATTRIBUTES,
    ),
    (
        "GCS size not a number",
        "malformed_data",
        b'{"bucket": "speakerline-uploads", "name": "a", "generation": "1", "size": "big"}',
        GCS_ATTRIBUTES,
    ),
]


def _subscriber() -> pubsub_v1.SubscriberClient:
    """A subscriber that can receive messages up to Pub/Sub's 10 MB: with PUBSUB_EMULATOR_HOST the client's own
    channel keeps gRPC's 4 MiB receive limit, and a pull of several large copies would be over it."""
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    channel = grpc.insecure_channel(os.environ["PUBSUB_EMULATOR_HOST"], options=options)
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))


@dataclasses.dataclass
class DeadLetters:
    expected: dict[tuple[str, str], str]  # (subscription, case) -> reason
    found: dict[tuple[str, str], list[Any]]  # (subscription, case) -> the dead-lettered copies


@pytest.fixture(scope="module")
def dead_letters(pipeline: stack.StackConfig) -> DeadLetters:
    """Every poison on every topic at once; then every dead-letter subscription pulled until each (subscription,
    case) arrived."""
    topo = topology.load()
    publisher = PubSubPublisher(pipeline.project, topo)
    run = uuid.uuid4().hex
    expected: dict[tuple[str, str], str] = {}
    for topic in topo.topics.values():
        subs = [s for s in topo.subscriptions.values() if s.topic == topic.name]
        event_type = topic.event_types[0] if topic.event_types else events.AudioUploaded.TYPE
        for poison in POISONS:
            attributes = {
                "ce-specversion": "1.0",
                "ce-id": str(uuid.uuid4()),
                "ce-source": "//e2e/bad-input",
                "ce-type": event_type,
                "content-type": "application/json",
            }
            data, attributes = poison.make(event_type, attributes)
            publisher.publish_raw(topic.name, data, {**attributes, "bad-input-run": run, "bad-input-case": poison.case})
            for sub in subs:
                expected[(sub.name, poison.case)] = (
                    "not_a_gcs_notification" if sub.payload != "cloudevent" else poison.reason
                )
        if not topic.event_types:
            for case, reason, data, attributes in GCS_POISONS:
                publisher.publish_raw(topic.name, data, {**attributes, "bad-input-run": run, "bad-input-case": case})
                for sub in subs:
                    expected[(sub.name, case)] = reason

    subscriber = _subscriber()
    found: dict[tuple[str, str], list[Any]] = {key: [] for key in expected}
    pending = {topo.subscriptions[name].dead_letter_subscription: name for name, _ in expected}
    deadline = time.monotonic() + DEAD_LETTER_TIMEOUT_S
    while time.monotonic() < deadline and any(not copies for copies in found.values()):
        for dead_letter, source in pending.items():
            path = subscriber.subscription_path(pipeline.project, dead_letter)
            response = subscriber.pull(request={"subscription": path, "max_messages": 50}, timeout=10)
            mine = [m for m in response.received_messages if m.message.attributes.get("bad-input-run") == run]
            if mine:
                subscriber.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in mine]})
            for m in mine:
                found.setdefault((source, m.message.attributes["bad-input-case"]), []).append(m.message)
        time.sleep(0.2)
    subscriber.close()
    # One report row per case and expected reason, over every subscription that got it; the bucket-notification
    # topic takes no CloudEvent at all, so its CloudEvent cases make one row.
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for (name, case), reason in expected.items():
        label = case
        if reason == "not_a_gcs_notification" and case in {poison.case for poison in POISONS}:
            label = f"each of the {len(POISONS)} CloudEvent cases above"
        groups.setdefault((label, reason), []).append((name, case))
    for (label, reason), keys in groups.items():
        at_once = [
            copies[0]
            for copies in (found.get(key, []) for key in keys)
            if len(copies) == 1
            and copies[0].attributes.get("speakerline-dead-letter-reason") == reason
            and "CloudPubSubDeadLetterSourceDeliveryCount" not in copies[0].attributes
        ]
        sub_names = sorted({name for name, _ in keys})
        topics = sorted({topo.subscriptions[name].topic for name in sub_names})
        _record(
            Row(
                label,
                f"topic {', '.join(topics)} ({len(sub_names)} subscription{'s' if len(sub_names) > 1 else ''})",
                f"dead-lettered at once: {reason}",
                f"dead-lettered at once, exactly once: {len(at_once)} of {len(keys)} messages, {reason}",
                at_once[0].attributes.get("speakerline-dead-letter-message", "") if at_once else "",
                answered=len(at_once) == len(keys),
            )
        )
    return DeadLetters(expected, found)


def test_every_broken_event_is_dead_lettered_at_once_with_its_reason(
    pipeline: stack.StackConfig, dead_letters: DeadLetters
) -> None:
    problems = []
    for (sub, case), reason in dead_letters.expected.items():
        copies = dead_letters.found.get((sub, case), [])
        if len(copies) != 1:
            problems.append(f"{case} on {sub}: {len(copies)} dead-lettered copies (want exactly 1)")
            continue
        attributes = copies[0].attributes
        if attributes.get("speakerline-dead-letter-reason") != reason:
            problems.append(
                f"{case} on {sub}: reason {attributes.get('speakerline-dead-letter-reason')!r}, want {reason!r}"
            )
        if attributes.get("speakerline-dead-letter-subscription") != sub or not attributes.get(
            "speakerline-dead-letter-message"
        ):
            problems.append(f"{case} on {sub}: no subscription or message attribute: {dict(attributes)}")
        if "CloudPubSubDeadLetterSourceDeliveryCount" in attributes:  # Pub/Sub's own policy: it was retried
            problems.append(f"{case} on {sub}: dead-lettered by Pub/Sub after retries, not at once")
    assert not problems, "\n".join(problems)
    big = next(copies for (_, case), copies in dead_letters.found.items() if case == "a 4 MB body")
    assert len(big[0].data) == BIG_BODY  # forwarded whole
    _healthy(pipeline)


def test_a_message_over_10_mb_is_refused_at_publish(pipeline: stack.StackConfig) -> None:
    """Pub/Sub's limit is 10 MB per publish request: the client refuses before sending, so no consumer ever sees
    it. (Between 4 MiB and 10 MB the emulator takes the message but its Python consumers cannot receive it: each
    delivery breaks the worker's stream until Pub/Sub's dead-letter policy moves it after 5 attempts, minutes
    later; on real Pub/Sub the client receives up to 10 MB and the message is dead-lettered at once.)"""
    row = _record(Row("a 10 MB + 1 byte body", "topic audio-uploaded", "publish refused"))
    publisher = PubSubPublisher(pipeline.project, topology.load())
    with pytest.raises(MessageTooLargeError) as refused:
        publisher.publish_raw("audio-uploaded", b"x" * (10 * 1000 * 1000 + 1), {"bad-input-case": "over 10 MB"})
    row.observed, row.shown, row.answered = "publish refused (MessageTooLargeError)", str(refused.value), True
    _healthy(pipeline)


# --- C. the HTTP API --------------------------------------------------------------------------------------------------

UPLOAD = {"file_name": "a.wav", "content_type": "audio/wav", "size": 1000}


@dataclasses.dataclass(frozen=True)
class ApiCase:
    case: str
    method: str
    path: str
    status: int
    code: str
    json_body: Any = None
    content: bytes | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    auth: str = "key"  # "key", "none", or a literal Authorization header value


def _chunked(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), 8192):
        yield data[start : start + 8192]


API_CASES = [
    ApiCase("malformed JSON", "POST", "/v1/uploads", 422, "invalid_request", content=b'{"file_name": '),
    ApiCase("body is a JSON array", "POST", "/v1/uploads", 422, "invalid_request", json_body=[UPLOAD]),
    ApiCase(
        "body sent as text/plain",
        "POST",
        "/v1/uploads",
        422,
        "invalid_request",
        content=json.dumps(UPLOAD).encode(),
        headers={"Content-Type": "text/plain"},
    ),
    ApiCase("size as a string", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "size": "1000"}),
    ApiCase(
        "num_speakers true", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "num_speakers": True}
    ),
    ApiCase(
        "num_speakers 2.0", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "num_speakers": 2.0}
    ),
    ApiCase("file_name a number", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "file_name": 7}),
    ApiCase("unknown field", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "num_speaker": 2}),
    ApiCase("num_speakers 0", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "num_speakers": 0}),
    ApiCase(
        "num_speakers 1000", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "num_speakers": 1000}
    ),
    ApiCase(
        "min_speakers > max_speakers",
        "POST",
        "/v1/uploads",
        422,
        "invalid_request",
        json_body={**UPLOAD, "min_speakers": 5, "max_speakers": 2},
    ),
    ApiCase("size 0", "POST", "/v1/uploads", 422, "invalid_request", json_body={**UPLOAD, "size": 0}),
    ApiCase(
        "size over the limit", "POST", "/v1/uploads", 422, "file_too_large", json_body={**UPLOAD, "size": 5 * 1024**4}
    ),
    ApiCase(
        "content_type text/plain",
        "POST",
        "/v1/uploads",
        422,
        "unsupported_format",
        json_body={**UPLOAD, "content_type": "text/plain"},
    ),
    ApiCase(
        "webhook_url javascript:",
        "POST",
        "/v1/uploads",
        422,
        "invalid_request",
        json_body={**UPLOAD, "webhook_url": "javascript:alert(1)"},
    ),
    ApiCase(
        "body of 70 KB",
        "POST",
        "/v1/uploads",
        413,
        "request_too_large",
        json_body={**UPLOAD, "file_name": "x" * 70_000},
    ),
    ApiCase(
        "chunked body of 70 KB", "POST", "/v1/uploads", 413, "request_too_large", content=b"[" + b" " * 70_000 + b"]"
    ),
    ApiCase(
        "input_uri with ../../etc/passwd",
        "POST",
        "/v1/jobs",
        422,
        "input_not_found",
        json_body={"input_uri": "gs://speakerline-uploads/../../etc/passwd"},
    ),
    ApiCase(
        "input_uri in another bucket",
        "POST",
        "/v1/jobs",
        422,
        "input_not_allowed",
        json_body={"input_uri": "gs://someone-elses-bucket/a.wav"},
    ),
    ApiCase(
        "input_uri not gs://", "POST", "/v1/jobs", 422, "invalid_request", json_body={"input_uri": "file:///etc/passwd"}
    ),
    ApiCase(
        "Idempotency-Key of 300 characters",
        "POST",
        "/v1/jobs",
        422,
        "invalid_request",
        json_body={"input_uri": "gs://speakerline-uploads/a"},
        headers={"Idempotency-Key": "k" * 300},
    ),
    ApiCase("job id ../../etc/passwd", "GET", "/v1/jobs/..%2F..%2Fetc%2Fpasswd", 404, "not_found"),
    ApiCase("job id with a dot", "GET", "/v1/jobs/job_../result", 422, "invalid_request"),
    ApiCase("limit=abc", "GET", "/v1/jobs?limit=abc", 422, "invalid_request"),
    ApiCase("page_token=../x", "GET", "/v1/jobs?page_token=../x", 400, "invalid_page_token"),
    ApiCase(
        "result format=exe", "GET", "/v1/jobs/job_0123456789abcdef01234567/result?format=exe", 422, "invalid_request"
    ),
    ApiCase("unknown route", "GET", "/v1/secrets", 404, "not_found"),
    ApiCase("wrong method", "PUT", "/v1/uploads", 405, "method_not_allowed", json_body=UPLOAD),
    ApiCase("no Authorization", "GET", "/v1/me", 401, "unauthenticated", auth="none"),
    ApiCase("Bearer garbage", "GET", "/v1/me", 401, "unauthenticated", auth="Bearer nonsense"),
    ApiCase("Basic credentials", "GET", "/v1/me", 401, "unauthenticated", auth="Basic dXNlcjpwYXNzd29yZA=="),
    ApiCase(
        "well-formed key, wrong secret",
        "GET",
        "/v1/me",
        401,
        "unauthenticated",
        auth="Bearer slk_000000000000_" + "x" * 43,
    ),
    ApiCase("JWT-shaped token", "GET", "/v1/me", 401, "unauthenticated", auth="Bearer aaa.bbb.ccc"),
    ApiCase("Authorization of 8 KB", "GET", "/v1/me", 401, "unauthenticated", auth="Bearer slk_" + "x" * 8000),
]


def _problem_row(case: str, path: str, expected: str, response: requests.Response) -> Row:
    row = _record(Row(case, f"API {path}", expected))
    is_problem = response.headers.get("content-type", "").startswith("application/problem+json")
    body = response.json() if is_problem else {}
    row.observed = f"{response.status_code} {body.get('code', '(no problem body)')}"
    row.shown = str(body.get("detail", response.text[:200]))
    row.answered = is_problem and 400 <= response.status_code < 500 and bool(body.get("code"))
    return row


def _check_problem(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code < 500, f"a {response.status_code} for bad input: {response.text[:500]}"
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code), body
    assert body["detail"] and body["type"].endswith("/" + code), body
    return body


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c.case)
def test_bad_requests_are_4xx_problems_with_a_reason(api: ApiHandle, case: ApiCase) -> None:
    headers = dict(case.headers)
    if case.auth == "key":
        headers.update(api.auth())
    elif case.auth != "none":
        headers["Authorization"] = case.auth
    content = _chunked(case.content) if case.case.startswith("chunked") and case.content else case.content
    if content is not None:
        headers.setdefault("Content-Type", "application/json")
    response = requests.request(
        case.method, api.url + case.path, json=case.json_body, data=content, headers=headers, timeout=30
    )
    _problem_row(case.case, f"{case.method} {case.path.split('?')[0]}", f"{case.status} {case.code}", response)
    _check_problem(response, case.status, case.code)


def test_a_revoked_key_is_refused_at_once(api: ApiHandle, pipeline: stack.StackConfig) -> None:
    keys = apikeys.FirestoreApiKeys(firestore.Client(project=pipeline.project))
    key, record = keys.create("bad-input", "revoked by test_bad_input")
    assert requests.get(f"{api.url}/v1/me", headers=api.auth(key), timeout=30).status_code == 200
    assert keys.revoke(record.key_id)
    response = requests.get(f"{api.url}/v1/me", headers=api.auth(key), timeout=30)
    _problem_row("revoked key", "GET /v1/me", "401 unauthenticated", response)
    body = _check_problem(response, 401, "unauthenticated")
    assert "revoked" in body["detail"]


def test_a_traversal_in_the_file_name_stays_in_the_jobs_folder(api: ApiHandle, pipeline: stack.StackConfig) -> None:
    """`../../etc/passwd` as the upload's name is not refused (a Windows path is a name people send): it is cut
    to its base name, the object lands in the job's own folder, and ingest then judges the content."""
    body = {"file_name": "../../etc/passwd", "content_type": "audio/wav", "size": len(TEXT)}
    signed = requests.post(f"{api.url}/v1/uploads", json=body, headers=api.auth(), timeout=30)
    row = _record(
        Row("file name ../../etc/passwd", "API POST /v1/uploads + PUT", "201, then REJECTED unsupported_format")
    )
    row.observed = f"{signed.status_code}"
    assert signed.status_code == 201, signed.text
    upload = signed.json()
    bucket = topology.load().bucket("uploads")
    assert upload["gs_uri"] == f"gs://{bucket}/api/{upload['job_id']}/passwd"
    assert upload["upload_headers"]["x-goog-meta-filename"] == "passwd"
    put = requests.put(upload["upload_url"], data=TEXT, headers=upload["upload_headers"], timeout=30)
    assert put.status_code == 200, put.text
    job = client.wait(firestore.Client(project=pipeline.project), upload["job_id"], timeout_s=120)
    status, shown = _outcome(job)
    row.observed, row.shown = f"201 {upload['gs_uri'].split('/', 3)[-1]}, then {status}", shown
    row.lost = job is None
    assert job is not None and job["status"] == "REJECTED", job
    assert job["error"]["code"] == "unsupported_format" and job["request"]["input"]["filename"] == "passwd"
    row.answered = True
    on_api = requests.get(f"{api.url}/v1/jobs/{upload['job_id']}", headers=api.auth(), timeout=30).json()
    assert on_api["file_name"] == "passwd" and on_api["error"]["code"] == "unsupported_format"


def test_the_stack_is_healthy_afterwards(pipeline: stack.StackConfig, api: ApiHandle) -> None:
    _healthy(pipeline)
    assert requests.get(f"{api.url}/health", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{api.url}/v1/me", headers=api.auth(), timeout=10).status_code == 200
