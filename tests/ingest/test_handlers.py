"""Ingest handlers: GCS notification → audio.uploaded, and validation/normalization → ingested or rejected."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from ingest import gcs_notification, handlers, wiring
from speakerline import bootstrap, events, runtime
from speakerline.audio import MediaLimits
from speakerline.events import AudioIngested, AudioUploaded, JobFailed, JobRejected, models
from speakerline.jobs import job_id_for_object
from speakerline.settings import Settings
from tests.fakes import MemoryBlobStore, RecordingPublisher, handler_context

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "conversation.flac"


def _deps(blobs) -> handlers.IngestDeps:
    return handlers.IngestDeps(
        blobs=blobs, work_bucket="work", source="//speakerline/services/ingest", limits=MediaLimits()
    )


def _notification_parts(
    name: str = "talks/a.flac", metadata: dict[str, str] | None = None, generation: str = "17"
) -> tuple[bytes, dict[str, str]]:
    body = {
        "bucket": "uploads",
        "name": name,
        "generation": generation,
        "size": "1234",
        "contentType": "audio/flac",
        "metadata": metadata or {},
    }
    attributes = {
        "payloadFormat": "JSON_API_V1",
        "eventType": "OBJECT_FINALIZE",
        "bucketId": "uploads",
        "objectId": name,
        "objectGeneration": generation,
        "eventTime": "2026-11-20T09:30:00Z",
    }
    return json.dumps(body).encode(), attributes


def _notification(
    name: str = "talks/a.flac", metadata: dict[str, str] | None = None, generation: str = "17"
) -> gcs_notification.ObjectFinalized:
    return gcs_notification.decode(*_notification_parts(name, metadata, generation))


def test_the_notification_decodes_to_a_typed_object_finalized_event() -> None:
    note = _notification(metadata={"num_speakers": "3"})
    assert isinstance(note, gcs_notification.ObjectFinalized)
    assert note.TYPE == "google.cloud.storage.object.v1.finalized"
    assert (note.data.bucket, note.data.name, note.data.generation, note.data.size) == (
        "uploads",
        "talks/a.flac",
        "17",
        1234,
    )
    assert note.data.contentType == "audio/flac" and note.data.metadata == {"num_speakers": "3"}
    assert note.id == "uploads/talks/a.flac#17"  # the same notification twice is the same event
    assert note.source == "//storage.googleapis.com/projects/_/buckets/uploads"
    assert note.subject == "objects/talks/a.flac"
    assert note.time.isoformat() == "2026-11-20T09:30:00+00:00"
    # A generation written as a JSON number is the same generation.
    body, attributes = _notification_parts()
    numeric = json.loads(body) | {"generation": 17}
    assert gcs_notification.decode(json.dumps(numeric).encode(), attributes).data.generation == "17"


def test_finalize_notification_becomes_audio_uploaded_with_a_deterministic_job_id(blobs) -> None:
    note = _notification(metadata={"num_speakers": "3", "webhook_url": "https://h.example/x", "correlation_id": "c-1"})
    (out,) = handlers.on_object_finalized(note, handler_context(), _deps(blobs))
    (again,) = handlers.on_object_finalized(
        _notification(metadata={"num_speakers": "3"}), handler_context(), _deps(blobs)
    )
    assert isinstance(out, AudioUploaded) and isinstance(again, AudioUploaded)
    assert out.TYPE == AudioUploaded.TYPE
    assert out.data.job_id == job_id_for_object("uploads", "talks/a.flac", "17") == again.data.job_id
    request = out.payload()["request"]
    assert request["input"] == {
        "uri": "gs://uploads/talks/a.flac",
        "generation": "17",
        "size_bytes": 1234,
        "filename": "a.flac",
        "content_type": "audio/flac",
    }
    assert request["options"] == {"num_speakers": 3}
    assert out.data.request.webhook_url == "https://h.example/x"
    assert out.data.request.correlation_id == "c-1"
    # A new generation of the same object is a new job.
    (other,) = handlers.on_object_finalized(_notification(generation="18"), handler_context(), _deps(blobs))
    assert other.data.job_id != out.data.job_id
    # What leaves the handler is a valid event of the catalog.
    events.to_pubsub(out)


def test_a_signed_upload_keeps_the_job_id_and_producer_the_api_announced(blobs) -> None:
    metadata = {"job_id": "job_0123456789abcdef01234567", "producer": "newsroom", "submitted_by": "api"}
    (out,) = handlers.on_object_finalized(_notification(metadata=metadata), handler_context(), _deps(blobs))
    assert isinstance(out, events.AudioUploaded)
    assert out.data.job_id == "job_0123456789abcdef01234567"
    assert out.data.request.producer == "newsroom" and out.data.request.submitted_by == "api"
    # A malformed id or producer is not trusted: the job id is derived from the object, the producer dropped.
    bad = {"job_id": "Not An Id", "producer": "News Room\n"}
    (derived,) = handlers.on_object_finalized(_notification(metadata=bad), handler_context(), _deps(blobs))
    assert derived.data.job_id.startswith("job_") and derived.data.job_id != "job_0123456789abcdef01234567"
    assert derived.data.request is not None and derived.data.request.producer is None


def test_invalid_metadata_rejects_the_job_with_a_reason(blobs) -> None:
    (out,) = handlers.on_object_finalized(
        _notification(metadata={"min_speakers": "4", "max_speakers": "2"}), handler_context(), _deps(blobs)
    )
    assert isinstance(out, JobRejected)
    assert out.TYPE == JobRejected.TYPE
    assert out.data.error.code == "invalid_options"
    (out,) = handlers.on_object_finalized(
        _notification(metadata={"num_speakers": "two"}), handler_context(), _deps(blobs)
    )
    assert isinstance(out, JobRejected)
    assert out.data.error.code == "invalid_options"
    assert "two" in out.data.error.message
    (out,) = handlers.on_object_finalized(
        _notification(metadata={"num_speakers": "40"}), handler_context(), _deps(blobs)
    )
    assert isinstance(out, JobRejected) and out.data.error.message == "num_speakers=40 is outside 1..32."


@pytest.mark.parametrize("raw", ["1_0", "\u0663", "3.0", "2.5", " ", "1e1", "9" * 5000])
def test_speaker_options_in_metadata_are_plain_ascii_whole_numbers(blobs, raw: str) -> None:
    """int() alone would take "1_0" as 10 and an Arabic-Indic digit as 3; the uploader meant something else."""
    (out,) = handlers.on_object_finalized(
        _notification(metadata={"num_speakers": raw}), handler_context(), _deps(blobs)
    )
    assert isinstance(out, JobRejected)
    assert out.data.error.code == "invalid_options"
    assert "is not a whole number" in out.data.error.message and len(out.data.error.message) < 200
    events.to_pubsub(out)


def test_surrounding_spaces_and_a_sign_are_still_whole_numbers(blobs) -> None:
    (out,) = handlers.on_object_finalized(
        _notification(metadata={"num_speakers": " 3 "}), handler_context(), _deps(blobs)
    )
    assert isinstance(out, AudioUploaded) and out.data.request.options.num_speakers == 3
    (out,) = handlers.on_object_finalized(
        _notification(metadata={"num_speakers": "-1"}), handler_context(), _deps(blobs)
    )
    assert isinstance(out, JobRejected) and out.data.error.message == "num_speakers=-1 is outside 1..32."


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("webhook_url", "ftp://hooks.example/x", "pattern"),
        ("webhook_url", "not a url", "pattern"),
        ("webhook_url", "https://hooks.example/" + "x" * 2100, "at most 2048"),
        ("correlation_id", "c" * 300, "at most 256"),
    ],
)
def test_a_webhook_url_or_correlation_id_the_schema_refuses_rejects_the_job(
    blobs, key: str, value: str, why: str
) -> None:
    """These used to fail every delivery of the notification (the event could not be built) until Pub/Sub
    dead-lettered it: the upload was lost without a word to the uploader."""
    (out,) = handlers.on_object_finalized(
        _notification(metadata={key: value, "num_speakers": "2"}), handler_context(), _deps(blobs)
    )
    assert isinstance(out, JobRejected)
    assert out.data.error.code == "invalid_metadata"
    assert out.data.error.message.startswith(f"Object metadata {key}=") and why in out.data.error.message
    assert len(out.data.error.message) < 300  # the value is shown cut, not 2 kB of it
    assert out.data.request is not None and getattr(out.data.request, key) is None  # a valid event all the same
    assert out.data.request.input.uri == "gs://uploads/talks/a.flac"
    events.to_pubsub(out)


def test_invalid_speaker_options_are_reported_before_invalid_metadata(blobs) -> None:
    metadata = {"webhook_url": "ftp://x", "min_speakers": "4", "max_speakers": "2"}
    (out,) = handlers.on_object_finalized(_notification(metadata=metadata), handler_context(), _deps(blobs))
    assert isinstance(out, JobRejected) and out.data.error.code == "invalid_options"


def test_display_only_metadata_over_the_schema_limits_is_cut_not_refused(blobs) -> None:
    metadata = {"filename": "f" * 2000 + ".wav", "submitted_by": "s" * 300}
    (out,) = handlers.on_object_finalized(_notification(metadata=metadata), handler_context(), _deps(blobs))
    assert isinstance(out, AudioUploaded)
    assert out.data.request.input.filename == "f" * 1024
    assert out.data.request.submitted_by == "s" * 256
    events.to_pubsub(out)


def test_the_last_failed_attempt_at_an_upload_notification_fails_its_job(blobs) -> None:
    note = _notification(name="talks/b.flac", generation="9")
    context = handler_context(5, final=True)
    (out,) = handlers.upload_exhausted(note, context, RuntimeError("publish timed out"), _deps(blobs))
    assert isinstance(out, JobFailed)
    assert out.data.job_id == job_id_for_object("uploads", "talks/b.flac", "9")  # the job the upload would have
    assert out.data.request is not None and out.data.request.input.uri == "gs://uploads/talks/b.flac"
    error = out.data.error
    assert (error.stage, error.code, error.retriable) == ("ingest", "ingest_error", True)
    assert "publish timed out" in error.message and out.data.attempt == 5
    # A signed upload's job id is the one the API announced.
    signed = _notification(metadata={"job_id": "job_0123456789abcdef01234567"})
    (failed,) = handlers.upload_exhausted(signed, context, RuntimeError("x"), _deps(blobs))
    assert failed.data.job_id == "job_0123456789abcdef01234567"
    events.to_pubsub(out)


def test_other_gcs_events_are_refused() -> None:
    with pytest.raises(events.InvalidEvent) as exc:
        gcs_notification.decode(b"{}", {"payloadFormat": "JSON_API_V1", "eventType": "OBJECT_DELETE"})
    assert exc.value.code == "unexpected_gcs_event"
    finalize = {"payloadFormat": "JSON_API_V1", "eventType": "OBJECT_FINALIZE"}
    cases = [
        (b"{}", {"payloadFormat": "NONE", "eventType": "OBJECT_FINALIZE"}, "not_a_gcs_notification"),
        (b"not json", finalize, "malformed_data"),
        (b'{"bucket": "uploads"}', finalize, "malformed_data"),
        (b'{"bucket": "uploads", "name": "a", "generation": "1", "size": "big"}', finalize, "malformed_data"),
    ]
    for data, attributes, code in cases:
        with pytest.raises(events.InvalidEvent) as exc:
            gcs_notification.decode(data, attributes)
        assert exc.value.code == code


def _uploaded(blobs, data: bytes, name: str = "a.flac") -> AudioUploaded:
    uri = f"gs://uploads/{name}"
    blobs.put(uri, data)
    request = models.Request(input=models.Input(uri=uri), options=models.Options())
    return AudioUploaded.new(models.AudioUploadedV1Data(job_id="job_testingest01", request=request), source="//t")


def test_real_speech_is_normalized_to_16k_mono_wav_in_the_work_bucket(blobs) -> None:
    (out,) = handlers.on_audio_uploaded(_uploaded(blobs, SAMPLE.read_bytes()), handler_context(), _deps(blobs))
    assert isinstance(out, AudioIngested)
    assert out.TYPE == AudioIngested.TYPE
    assert out.data.audio.uri == "gs://work/jobs/job_testingest01/audio.wav"
    assert out.data.source.format == "flac"
    with wave.open(io.BytesIO(blobs.read_bytes(out.data.audio.uri))) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert abs(wav.getnframes() / 16000 - out.data.audio.duration_s) < 0.05
    events.to_pubsub(out)


def test_content_not_name_decides_the_format(blobs) -> None:
    event = _uploaded(blobs, SAMPLE.read_bytes(), name="looks-like.mp3")
    (out,) = handlers.on_audio_uploaded(event, handler_context(), _deps(blobs))
    assert isinstance(out, AudioIngested)
    assert out.data.source.format == "flac"


def test_bad_input_is_rejected_with_a_machine_readable_code(blobs) -> None:
    cases = {
        b"": "empty_file",
        b"%PDF-1.7 this is not audio at all" * 10: "unsupported_format",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 200: "unsupported_format",
    }
    for data, code in cases.items():
        (out,) = handlers.on_audio_uploaded(_uploaded(blobs, data), handler_context(), _deps(blobs))
        assert isinstance(out, JobRejected)
        assert out.TYPE == JobRejected.TYPE
        error = out.data.error
        assert (error.code, error.stage, error.retriable) == (code, "ingest", False)
        assert error.message


def test_missing_input_and_contradicting_options_are_rejected(blobs) -> None:
    request = models.Request(input=models.Input(uri="gs://uploads/nothing.wav"), options=models.Options())
    event = AudioUploaded.new(models.AudioUploadedV1Data(job_id="job_testingest02", request=request), source="//t")
    (out,) = handlers.on_audio_uploaded(event, handler_context(), _deps(blobs))
    assert isinstance(out, JobRejected)
    assert out.data.error.code == "input_not_found"
    request = models.Request(
        input=models.Input(uri="gs://uploads/x.wav"), options=models.Options(min_speakers=5, max_speakers=2)
    )
    event = AudioUploaded.new(models.AudioUploadedV1Data(job_id="job_testingest03", request=request), source="//t")
    (out,) = handlers.on_audio_uploaded(event, handler_context(), _deps(blobs))
    assert isinstance(out, JobRejected)
    assert out.data.error.code == "invalid_options"


def test_an_overwritten_object_is_not_this_job(blobs, example) -> None:
    event = AudioUploaded.new(models.AudioUploadedV1Data.model_validate(example("audio.uploaded")), source="//t")
    blobs.put(event.data.request.input.uri, SAMPLE.read_bytes())  # generation "1", not the example's
    (out,) = handlers.on_audio_uploaded(event, handler_context(), _deps(blobs))
    assert isinstance(out, JobRejected)
    assert out.data.error.code == "input_replaced"
    assert out.data.request == event.data.request  # the job's request travels with its outcome


def test_redelivery_produces_the_same_event_id(blobs) -> None:
    event = _uploaded(blobs, SAMPLE.read_bytes())
    (first,) = handlers.on_audio_uploaded(event, handler_context(), _deps(blobs))
    (second,) = handlers.on_audio_uploaded(event, handler_context(attempt=2), _deps(blobs))
    assert first.id == second.id


def test_the_last_failed_attempt_fails_the_job_retriably(blobs) -> None:
    event = _uploaded(blobs, SAMPLE.read_bytes())
    (out,) = handlers.on_exhausted(event, handler_context(attempt=5), ConnectionError("storage is down"), _deps(blobs))
    assert isinstance(out, JobFailed)
    assert (out.data.job_id, out.data.attempt, out.data.request) == ("job_testingest01", 5, event.data.request)
    error = out.data.error
    assert (error.stage, error.code, error.retriable) == ("ingest", "ingest_error", True)
    assert "storage is down" in error.message
    events.to_pubsub(out)


def test_wire_builds_both_routes_with_the_limits_of_the_settings() -> None:
    settings = Settings(project="p", max_duration_s=60)
    blobs, publisher = MemoryBlobStore(), RecordingPublisher()
    service = bootstrap.build_service("ingest", settings, publisher=publisher, blobs=blobs)
    assert set(service.routes) == {"on_object_finalized", "on_audio_uploaded"}
    assert service.routes["on_object_finalized"].accepts == (gcs_notification.ObjectFinalized,)
    assert service.routes["on_object_finalized"].on_exhausted is not None
    assert service.routes["on_audio_uploaded"].accepts == (AudioUploaded,)
    assert service.routes["on_audio_uploaded"].on_exhausted is not None
    assert set(service.decoders) == {"gcs-notification"}

    deps = wiring.build_deps(bootstrap.Platform("ingest", settings, blobs=blobs))
    assert isinstance(deps, handlers.IngestDeps)
    assert deps.limits.max_duration_s == 60
    # Limits left unset keep MediaLimits' defaults.
    assert (deps.limits.max_bytes, deps.limits.min_duration_s) == (MediaLimits().max_bytes, 0.5)
    assert deps.blobs is blobs
    assert (deps.work_bucket, deps.source) == (settings.bucket("work"), "//speakerline/services/ingest")

    # Through the runtime: a bucket notification comes out as audio.uploaded, and a recording over the
    # configured 60 s is rejected as too long.
    subscriptions = {sub.handler: sub for sub in settings.topology.subscriptions_of("ingest")}
    body, attributes = _notification_parts(name="long.wav", generation="1")
    delivery = runtime.Delivery(body, attributes, "m-1", 1)
    assert runtime.process(service, subscriptions["on_object_finalized"], delivery) is runtime.Outcome.ACK
    assert publisher.types() == [AudioUploaded.TYPE]

    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes((np.sin(np.arange(61 * 16000) / 8) * 8000).astype("<i2").tobytes())
    blobs.put("gs://uploads/long.wav", buf.getvalue())
    uploaded, attributes = events.to_pubsub(publisher.events[0])
    delivery = runtime.Delivery(uploaded, attributes, "m-2", 1)
    assert runtime.process(service, subscriptions["on_audio_uploaded"], delivery) is runtime.Outcome.ACK
    assert publisher.types()[1:] == [JobRejected.TYPE]
    rejected = events.parse_pubsub(*events.to_pubsub(publisher.events[1]))
    assert isinstance(rejected, JobRejected) and rejected.data.error.code == "too_long"
