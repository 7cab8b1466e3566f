"""Bad input through the uploads bucket (objects and metadata written as `speakerline_tools.client.submit` writes
them): files that are not audio, broken, empty, silent, over the limits, of an unsupported codec, video without
sound, a WAV header that lies, odd object names, metadata that is not a number or contradicts itself. Every case is
uploaded at once by one module fixture, which then waits for all the jobs; each case is then one test.

The size and duration limit cases need the stack's limits lowered (bad_input.py says how).
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
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
import google.cloud.storage as gcs
import numpy as np
import pytest
import soundfile
from google.cloud import firestore

from speakerline import topology, uploads
from speakerline.jobs import JobStatus, job_id_for_object
from speakerline.pubsub import PubSubPublisher
from speakerline_tools import jobstore, stack

from .bad_input import JOB_TIMEOUT_S, LIMIT_ENV, MIB, SPEECH, TEXT, Row, healthy, outcome, record

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("bad_input_report")]


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


@pytest.mark.parametrize("case", UPLOAD_CASES, ids=lambda c: c.case)
def test_each_bad_upload_ends_with_a_reason(uploaded: dict[str, Submitted], case: UploadCase) -> None:
    item = uploaded[case.case]
    expected = f"{case.status} {case.code or ''}".strip()
    row = record(Row(case.case, "bucket (`speakerline submit`)", expected))
    if item.skipped:
        row.observed = "not run: limit not lowered"
        pytest.fail(f"the stack's limit is not lowered: add {item.skipped}={LIMIT_ENV[item.skipped]} to service_env")
    job = item.job
    row.observed, row.shown = outcome(job)
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
    row = record(Row(MISSING_OBJECT, f"topic {uploads_topic()} (GCS notification)", "REJECTED input_not_found"))
    row.observed, row.shown = outcome(item.job)
    row.lost = item.job is None
    assert item.job is not None and item.job["status"] == "REJECTED", item.job
    assert item.job["error"]["code"] == "input_not_found"
    row.answered = True


def test_the_stack_is_healthy_after_the_uploads(pipeline: stack.StackConfig, uploaded: dict[str, Submitted]) -> None:
    lost = [
        key for key, s in uploaded.items() if s.job_id and (s.job is None or not JobStatus(s.job["status"]).terminal)
    ]
    assert lost == [], f"jobs not terminal within {JOB_TIMEOUT_S} s: {lost}"
    healthy(pipeline)
