"""Ingest handlers: GCS notification → audio.uploaded, and validation/normalization → ingested or rejected."""

from __future__ import annotations

import io
import json
import wave

from speakerline import events
from speakerline.jobs import job_id_for_object
from ingest import gcs_notification, handlers
from ingest.media import MediaLimits

SAMPLE = __import__("pathlib").Path(__file__).resolve().parents[1] / "data" / "sample" / "conversation.flac"


def _deps(blobs) -> handlers.IngestDeps:  # type: ignore[no-untyped-def]
    return handlers.IngestDeps(
        blobs=blobs, work_bucket="work", source="//speakerline/services/ingest", limits=MediaLimits()
    )


def _notification(name: str = "talks/a.flac", metadata: dict | None = None, generation: str = "17"):  # type: ignore[no-untyped-def]
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
    return gcs_notification.decode(json.dumps(body).encode(), attributes)


def test_finalize_notification_becomes_audio_uploaded_with_a_deterministic_job_id(blobs) -> None:
    note = _notification(metadata={"num_speakers": "3", "webhook_url": "https://h.example/x", "correlation_id": "c-1"})
    (out,) = handlers.on_object_finalized(note, _deps(blobs))
    (again,) = handlers.on_object_finalized(_notification(metadata={"num_speakers": "3"}), _deps(blobs))
    data = events.data_of(out)
    assert out["type"] == handlers.UPLOADED
    assert data["job_id"] == job_id_for_object("uploads", "talks/a.flac", "17") == events.data_of(again)["job_id"]
    assert data["request"]["input"] == {
        "uri": "gs://uploads/talks/a.flac",
        "generation": "17",
        "size_bytes": 1234,
        "filename": "a.flac",
        "content_type": "audio/flac",
    }
    assert data["request"]["options"] == {"num_speakers": 3}
    assert data["request"]["webhook_url"] == "https://h.example/x"
    assert data["request"]["correlation_id"] == "c-1"
    # A new generation of the same object is a new job.
    (other,) = handlers.on_object_finalized(_notification(generation="18"), _deps(blobs))
    assert events.data_of(other)["job_id"] != data["job_id"]


def test_invalid_metadata_rejects_the_job_with_a_reason(blobs) -> None:
    (out,) = handlers.on_object_finalized(
        _notification(metadata={"min_speakers": "4", "max_speakers": "2"}), _deps(blobs)
    )
    assert out["type"] == handlers.REJECTED
    assert events.data_of(out)["error"]["code"] == "invalid_options"
    (out,) = handlers.on_object_finalized(_notification(metadata={"num_speakers": "two"}), _deps(blobs))
    assert events.data_of(out)["error"]["code"] == "invalid_options"
    assert "two" in events.data_of(out)["error"]["message"]


def test_other_gcs_events_are_refused() -> None:
    import pytest

    with pytest.raises(events.InvalidEvent) as exc:
        gcs_notification.decode(b"{}", {"payloadFormat": "JSON_API_V1", "eventType": "OBJECT_DELETE"})
    assert exc.value.code == "unexpected_gcs_event"


def _uploaded(blobs, data: bytes, name: str = "a.flac"):  # type: ignore[no-untyped-def]
    uri = f"gs://uploads/{name}"
    blobs.put(uri, data)
    payload = {"job_id": "job_testingest01", "request": {"input": {"uri": uri}, "options": {}}}
    return events.new_event(handlers.UPLOADED, payload, source="//t")


def test_real_speech_is_normalized_to_16k_mono_wav_in_the_work_bucket(blobs) -> None:
    (out,) = handlers.on_audio_uploaded(_uploaded(blobs, SAMPLE.read_bytes()), _deps(blobs))
    data = events.data_of(out)
    assert out["type"] == handlers.INGESTED
    assert data["audio"]["uri"] == "gs://work/jobs/job_testingest01/audio.wav"
    assert data["source"]["format"] == "flac"
    with wave.open(io.BytesIO(blobs.read_bytes(data["audio"]["uri"]))) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert abs(wav.getnframes() / 16000 - data["audio"]["duration_s"]) < 0.05


def test_content_not_name_decides_the_format(blobs) -> None:
    (out,) = handlers.on_audio_uploaded(_uploaded(blobs, SAMPLE.read_bytes(), name="looks-like.mp3"), _deps(blobs))
    assert events.data_of(out)["source"]["format"] == "flac"


def test_bad_input_is_rejected_with_a_machine_readable_code(blobs) -> None:
    cases = {
        b"": "empty_file",
        b"%PDF-1.7 this is not audio at all" * 10: "unsupported_format",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 200: "unsupported_format",
    }
    for data, code in cases.items():
        (out,) = handlers.on_audio_uploaded(_uploaded(blobs, data), _deps(blobs))
        assert out["type"] == handlers.REJECTED
        error = events.data_of(out)["error"]
        assert (error["code"], error["stage"], error["retriable"]) == (code, "ingest", False)
        assert error["message"]


def test_missing_input_and_contradicting_options_are_rejected(blobs) -> None:
    event = events.new_event(
        handlers.UPLOADED,
        {"job_id": "job_testingest02", "request": {"input": {"uri": "gs://uploads/nothing.wav"}, "options": {}}},
        source="//t",
    )
    (out,) = handlers.on_audio_uploaded(event, _deps(blobs))
    assert events.data_of(out)["error"]["code"] == "input_not_found"
    event = events.new_event(
        handlers.UPLOADED,
        {
            "job_id": "job_testingest03",
            "request": {"input": {"uri": "gs://uploads/x.wav"}, "options": {"min_speakers": 5, "max_speakers": 2}},
        },
        source="//t",
    )
    (out,) = handlers.on_audio_uploaded(event, _deps(blobs))
    assert events.data_of(out)["error"]["code"] == "invalid_options"


def test_redelivery_produces_the_same_event_id(blobs) -> None:
    event = _uploaded(blobs, SAMPLE.read_bytes())
    (first,) = handlers.on_audio_uploaded(event, _deps(blobs))
    (second,) = handlers.on_audio_uploaded(event, _deps(blobs))
    assert first["id"] == second["id"]
