"""Post-processing handler: raw turns → output.json (lineage format), RTTM, WebVTT and job.completed."""

from __future__ import annotations

import json

import pytest

from postprocess import handlers, wiring
from postprocess.timeline_rules import PostprocessConfig
from speakerline import events, runtime
from speakerline.bootstrap import Platform, build_service
from speakerline.events import models
from speakerline.settings import Settings
from speakerline.timeline import parse_rttm
from tests.fakes import MemoryBlobStore, RecordingPublisher, handler_context

SOURCE = "//speakerline/services/postprocess"


def _completed(data: dict) -> events.DiarizationCompleted:
    return events.DiarizationCompleted.new(models.DiarizationCompletedV1Data.model_validate(data), source="//t")


def _contract_keys(document: dict, summary: models.Summary) -> dict:
    """The part of output.json's summary that has the contract Summary's keys."""
    contract = events.to_json(summary)
    picked = {k: document[k] for k in contract}
    picked["speakers"] = [{k: s[k] for k in c} for s, c in zip(document["speakers"], contract["speakers"], strict=True)]
    return picked


def _deps(blobs: MemoryBlobStore) -> handlers.PostprocessDeps:
    return handlers.PostprocessDeps(blobs, "results", SOURCE, PostprocessConfig())


def test_completed_diarization_becomes_a_clean_result(blobs, example) -> None:
    data = example("diarization.completed")
    raw = [  # B's 0.2 s blip is noise; A's two turns 0.3 s apart are one turn
        {"speaker": "B", "start": 0.0, "end": 0.2, "duration": 0.2},
        {"speaker": "A", "start": 0.5, "end": 3.0, "duration": 2.5},
        {"speaker": "A", "start": 3.3, "end": 6.0, "duration": 2.7},
        {"speaker": "B", "start": 6.5, "end": 9.0, "duration": 2.5},
        {"speaker": "A", "start": 8.5, "end": 10.0, "duration": 1.5},
    ]
    blobs.put(data["result"]["turns_uri"], json.dumps({"segments": raw}).encode())
    data["audio"]["duration_s"] = 12.0
    event = _completed(data)

    (out,) = handlers.on_diarization_completed(event, handler_context(), _deps(blobs))
    assert isinstance(out, events.JobCompleted)
    assert out.TYPE == events.JobCompleted.TYPE
    result = out.data.result
    job_id = data["job_id"]
    assert result.output_uri == f"gs://results/results/{job_id}/output.json"
    output = json.loads(blobs.read_bytes(result.output_uri))
    assert output["segments"] == [
        {"speaker": "SPEAKER_00", "start": 0.5, "end": 6.0, "duration": 5.5},
        {"speaker": "SPEAKER_01", "start": 6.5, "end": 9.0, "duration": 2.5},
        {"speaker": "SPEAKER_00", "start": 8.5, "end": 10.0, "duration": 1.5},
    ]
    summary = result.summary
    assert summary.num_speakers == 2 and summary.num_segments == 3
    assert summary.overlap_s == 0.5
    assert abs(sum(s.share for s in summary.speakers) - 1) < 0.01
    rttm = parse_rttm(blobs.read_bytes(result.rttm_uri).decode())[job_id]
    assert [t.speaker for t in rttm] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]
    vtt = blobs.read_bytes(result.vtt_uri).decode()
    assert vtt.startswith("WEBVTT") and "<v SPEAKER_01>" in vtt
    assert out.payload()["request"] == data["request"]
    # The turns JSON has no exclusive timeline (an engine without one): it is derived from the clean segments.
    assert output["exclusive_segments"] == [
        {"speaker": "SPEAKER_00", "start": 0.5, "end": 6.0, "duration": 5.5},
        {"speaker": "SPEAKER_01", "start": 6.5, "end": 9.0, "duration": 2.5},
        {"speaker": "SPEAKER_00", "start": 9.0, "end": 10.0, "duration": 1.0},
    ]
    assert summary.num_exclusive_segments == 3
    assert len(rttm) == 3 and vtt.count("-->") == 3  # RTTM and WebVTT stay overlap-aware
    # One summary: output.json's is the event's (it validates as the contract's Summary and has the very same
    # numbers), plus output.json's older names of the same figures and its own extra figures.
    document = output["summary"]
    models.Summary.model_validate(document)
    assert _contract_keys(document, summary) == events.to_json(summary)
    assert document["total_speech_s"] == summary.speech_s
    assert [s["share_of_speech"] for s in document["speakers"]] == [s.share for s in summary.speakers]
    assert {"silence_s"} <= document.keys()
    assert all({"share_of_audio", "first_start_s", "last_end_s"} <= s.keys() for s in document["speakers"])
    # Derived from the input: a redelivered diarization.completed yields the very same job.completed.
    (again,) = handlers.on_diarization_completed(event, handler_context(attempt=2), _deps(blobs))
    assert again.id == out.id
    out.to_cloudevent()  # valid against the job.completed schema


def test_the_engines_exclusive_timeline_is_cleaned_and_labelled_like_the_segments(blobs, example) -> None:
    data = example("diarization.completed")
    raw = {
        "segments": [
            {"speaker": "ghost", "start": 0.0, "end": 0.1, "duration": 0.1},  # a phantom: cleaned away
            {"speaker": "spk_7", "start": 1.0, "end": 5.0, "duration": 4.0},
            {"speaker": "spk_3", "start": 4.0, "end": 9.0, "duration": 5.0},
        ],
        "exclusive_segments": [  # the engine's own choice (spk_7 keeps the overlap), fragmented at a breath
            {"speaker": "ghost", "start": 0.0, "end": 0.1, "duration": 0.1},
            {"speaker": "spk_7", "start": 1.0, "end": 2.9, "duration": 1.9},
            {"speaker": "spk_7", "start": 3.1, "end": 5.0, "duration": 1.9},
            {"speaker": "spk_3", "start": 5.0, "end": 9.0, "duration": 4.0},
        ],
    }
    blobs.put(data["result"]["turns_uri"], json.dumps(raw).encode())

    (out,) = handlers.on_diarization_completed(_completed(data), handler_context(), _deps(blobs))
    assert isinstance(out, events.JobCompleted)
    result = out.data.result
    output = json.loads(blobs.read_bytes(result.output_uri))
    assert output["segments"] == [
        {"speaker": "SPEAKER_00", "start": 1.0, "end": 5.0, "duration": 4.0},
        {"speaker": "SPEAKER_01", "start": 4.0, "end": 9.0, "duration": 5.0},
    ]
    assert output["exclusive_segments"] == [  # not the derived one, which would give the overlap to SPEAKER_01
        {"speaker": "SPEAKER_00", "start": 1.0, "end": 5.0, "duration": 4.0},
        {"speaker": "SPEAKER_01", "start": 5.0, "end": 9.0, "duration": 4.0},
    ]
    assert output["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    assert result.summary.num_exclusive_segments == 2 and result.summary.num_segments == 2


def test_an_exhausted_message_fails_the_job(blobs, example) -> None:
    event = _completed(example("diarization.completed"))
    context = handler_context(5, final=True)
    (failed,) = handlers.on_exhausted(event, context, RuntimeError("disk full"), _deps(blobs))
    assert isinstance(failed, events.JobFailed)
    assert failed.data.job_id == event.data.job_id and failed.data.request == event.data.request
    assert failed.data.error.stage == models.Stage.postprocess
    assert (failed.data.error.code, failed.data.error.retriable) == ("postprocess_error", True)
    assert "disk full" in failed.data.error.message
    assert failed.data.attempt == 5
    failed.to_cloudevent()


def test_build_service_wires_the_route_and_the_settings(example) -> None:
    publisher, blobs = RecordingPublisher(), MemoryBlobStore()
    settings = Settings(project="p", merge_gap_s=1.25, bucket_prefix="p-")
    service = build_service("postprocess", settings, publisher=publisher, blobs=blobs)
    route = service.routes["on_diarization_completed"]
    # A diarization.completed from its subscription goes through the route and its job.completed is published.
    data = example("diarization.completed")
    blobs.put(data["result"]["turns_uri"], json.dumps({"segments": []}).encode())
    body, attributes = events.to_pubsub(_completed(data))
    sub = settings.topology.subscriptions["postprocess-diarization"]
    outcome = runtime.process(service, sub, runtime.Delivery(body, attributes, "m-1", 1))
    assert outcome is runtime.Outcome.ACK
    assert publisher.types() == [events.JobCompleted.TYPE]
    assert route.accepts == (events.DiarizationCompleted,) and route.on_exhausted is not None
    deps = wiring.build_deps(Platform("postprocess", settings, blobs=blobs))
    assert deps.config == PostprocessConfig(merge_gap_s=1.25)  # min_segment_s unset: PostprocessConfig's default
    assert deps.blobs is blobs
    assert deps.results_bucket == "p-speakerline-results"
    assert deps.source == "//speakerline/services/postprocess"
    assert service.publisher is publisher
    assert handlers.PostprocessDeps is type(deps)
    assert [sub.handler for sub in settings.topology.subscriptions_of("postprocess")] == ["on_diarization_completed"]


@pytest.mark.parametrize(("merge_gap_s", "min_segment_s"), [(None, None), (0.0, 0.0), (2.0, 1.0)])
def test_unset_thresholds_keep_the_defaults(merge_gap_s, min_segment_s) -> None:
    from postprocess.wiring import config

    defaults = PostprocessConfig()
    got = config(merge_gap_s, min_segment_s)
    assert got.merge_gap_s == (defaults.merge_gap_s if merge_gap_s is None else merge_gap_s)
    assert got.min_segment_s == (defaults.min_segment_s if min_segment_s is None else min_segment_s)


def test_the_engines_fallback_is_carried_into_job_completed_and_output_json(blobs, example) -> None:
    # A job the GPU path could not take ran on the diarization worker's CPU engine: the producer sees it, and why.
    data = example("diarization.completed")
    fallback = {"from": "vertex", "reason": "gpu_start_timeout", "message": "did not start within 900 s"}
    data["engine"] = {"name": "embedded", "model": "segmentation-3.0+campplus", "device": "cpu", "fallback": fallback}
    blobs.put(data["result"]["turns_uri"], json.dumps({"segments": []}).encode())

    (out,) = handlers.on_diarization_completed(_completed(data), handler_context(), _deps(blobs))

    assert out.payload()["engine"] == data["engine"]
    assert out.data.engine.fallback is not None and out.data.engine.fallback.reason == "gpu_start_timeout"
    out.to_cloudevent()  # valid job.completed
    assert json.loads(blobs.read_bytes(out.data.result.output_uri))["engine"] == data["engine"]
