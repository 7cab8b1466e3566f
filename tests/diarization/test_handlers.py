"""Diarization handler with an engine double behind the engine interface (engines have their own tests)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from speakerline import events
from speakerline.timeline import parse_rttm
from diarization import handlers
from diarization.engines.base import (
    DiarizationOptions,
    DiarizationResult,
    EngineUnavailable,
    Progress,
    SpeakerTurn,
)


class ScriptedEngine:
    name = "scripted"

    def __init__(self, exclusive: tuple[SpeakerTurn, ...] = ()) -> None:
        self.calls: list[tuple[bytes, DiarizationOptions]] = []
        self.exclusive = exclusive

    def diarize(self, audio_path: Path, options: DiarizationOptions, progress: object = None) -> DiarizationResult:
        self.calls.append((audio_path.read_bytes(), options))
        turns = (SpeakerTurn(0.0, 1.5, "spk_a"), SpeakerTurn(1.5, 3.0, "spk_b"))
        return DiarizationResult(
            turns, "scripted", "test-model", "cpu", {"inference_s": 0.5, "rtf": 0.1}, exclusive_turns=self.exclusive
        )


def _deps(blobs, engine, published: list) -> handlers.DiarizationDeps:  # type: ignore[no-untyped-def]
    def load():  # type: ignore[no-untyped-def]
        if isinstance(engine, Exception):
            raise engine
        return engine

    return handlers.DiarizationDeps(
        blobs=blobs,
        work_bucket="work",
        source="//speakerline/services/diarization",
        worker="w1",
        publish=published.extend,
        engine=load,
        engine_info=lambda: handlers.EngineInfo("scripted", "test-model", "cpu"),
    )


def test_started_is_published_first_then_completed_with_results_in_the_work_bucket(blobs, example) -> None:
    data = example("audio.ingested")
    blobs.put(data["audio"]["uri"], b"RIFF-the-normalized-audio")
    engine, published = ScriptedEngine(), []
    event = events.new_event(handlers.INGESTED, data, source="//t")

    (out,) = handlers.on_audio_ingested(event, _deps(blobs, engine, published))

    assert [e["type"] for e in published] == [handlers.STARTED]
    assert events.data_of(published[0])["engine"] == {"name": "scripted", "model": "test-model", "device": "cpu"}
    assert engine.calls == [(b"RIFF-the-normalized-audio", DiarizationOptions(None, 2, 4))]
    assert out["type"] == handlers.COMPLETED
    result = events.data_of(out)["result"]
    assert (result["num_speakers"], result["num_turns"]) == (2, 2)
    segments = json.loads(blobs.read_bytes(result["turns_uri"]))["segments"]
    assert segments[0] == {"speaker": "spk_a", "start": 0.0, "end": 1.5, "duration": 1.5}
    assert len(parse_rttm(blobs.read_bytes(result["rttm_uri"]).decode())[data["job_id"]]) == 2


def test_the_engines_exclusive_timeline_is_stored_beside_the_raw_turns(blobs, example) -> None:
    data = example("audio.ingested")
    blobs.put(data["audio"]["uri"], b"RIFF")
    exclusive = (SpeakerTurn(0.0, 1.25, "spk_a"), SpeakerTurn(1.25, 2.5, "spk_b"), SpeakerTurn(2.5, 3.0, "spk_a"))
    event = events.new_event(handlers.INGESTED, data, source="//t")

    (out,) = handlers.on_audio_ingested(event, _deps(blobs, ScriptedEngine(exclusive), []))

    result = events.data_of(out)["result"]  # validated against the (extended) schema when built
    assert (result["num_turns"], result["num_exclusive_turns"]) == (2, 3)
    stored = json.loads(blobs.read_bytes(result["turns_uri"]))
    assert stored["segments"] == [  # unchanged by the exclusive timeline
        {"speaker": "spk_a", "start": 0.0, "end": 1.5, "duration": 1.5},
        {"speaker": "spk_b", "start": 1.5, "end": 3.0, "duration": 1.5},
    ]
    assert stored["exclusive_segments"] == [
        {"speaker": "spk_a", "start": 0.0, "end": 1.25, "duration": 1.25},
        {"speaker": "spk_b", "start": 1.25, "end": 2.5, "duration": 1.25},
        {"speaker": "spk_a", "start": 2.5, "end": 3.0, "duration": 0.5},
    ]


def test_without_an_exclusive_timeline_from_the_engine_none_is_claimed(blobs, example) -> None:
    # Left out rather than stored empty: post-processing derives it, and [] would mean "no speech".
    data = example("audio.ingested")
    blobs.put(data["audio"]["uri"], b"RIFF")
    event = events.new_event(handlers.INGESTED, data, source="//t")
    (out,) = handlers.on_audio_ingested(event, _deps(blobs, ScriptedEngine(), []))
    result = events.data_of(out)["result"]
    assert "num_exclusive_turns" not in result
    assert set(json.loads(blobs.read_bytes(result["turns_uri"]))) == {"segments"}


def test_an_engine_that_cannot_load_fails_the_job_without_retrying(blobs, example) -> None:
    event = events.new_event(handlers.INGESTED, example("audio.ingested"), source="//t")
    published: list = []
    (out,) = handlers.on_audio_ingested(event, _deps(blobs, EngineUnavailable("no model"), published))
    assert out["type"] == handlers.JOB_FAILED
    error = events.data_of(out)["error"]
    assert (error["code"], error["retriable"], error["stage"]) == ("engine_unavailable", False, "diarization")
    assert published == []


def test_exhausted_retries_fail_the_job_as_retriable(blobs, example) -> None:
    event = events.new_event(handlers.INGESTED, example("audio.ingested"), source="//t")
    (out,) = handlers.on_exhausted(event, RuntimeError("CUDA error"), _deps(blobs, ScriptedEngine(), []))
    error = events.data_of(out)["error"]
    assert (error["code"], error["retriable"]) == ("engine_error", True)
    assert "CUDA error" in error["message"]


class ProgressingEngine(ScriptedEngine):
    """Reports progress as a real engine does: many small steps, then returns."""

    def diarize(self, audio_path: Path, options: DiarizationOptions, progress: object = None) -> DiarizationResult:
        assert callable(progress)
        for step in range(1, 11):
            progress(Progress(fraction=step / 10, stage="embeddings"))
        return super().diarize(audio_path, options)


def test_progress_is_published_while_the_engine_runs_throttled_and_validated(blobs, example) -> None:
    data = example("audio.ingested")
    blobs.put(data["audio"]["uri"], b"RIFF")
    published: list = []
    deps = dataclasses.replace(_deps(blobs, ProgressingEngine(), published), progress_interval_s=3600.0)
    event = events.new_event(handlers.INGESTED, data, source="//t")

    (out,) = handlers.on_audio_ingested(event, deps)

    # started, then one report: the throttle holds the next nine back (an hour between reports here)
    assert [e["type"] for e in published] == [handlers.STARTED, handlers.PROGRESS]
    report = events.data_of(published[1])
    assert report["job_id"] == data["job_id"] and report["worker"] == "w1" and report["attempt"] == 1
    progress = report["progress"]
    assert (progress["fraction"], progress["stage"], progress["sequence"]) == (0.1, "embeddings", 1)
    assert progress["processed_audio_s"] == round(0.1 * data["audio"]["duration_s"], 3)
    assert out["type"] == handlers.COMPLETED

    published.clear()
    unthrottled = dataclasses.replace(deps, progress_interval_s=0.0)
    handlers.on_audio_ingested(event, unthrottled)
    fractions = [events.data_of(e)["progress"]["fraction"] for e in published if e["type"] == handlers.PROGRESS]
    assert fractions == [step / 10 for step in range(1, 11)]
    ids = [e["id"] for e in published if e["type"] == handlers.PROGRESS]
    assert len(set(ids)) == 10  # one id per report; the same report of a redelivery gets the same id


def test_a_failing_progress_publish_does_not_fail_the_job(blobs, example) -> None:
    data = example("audio.ingested")
    blobs.put(data["audio"]["uri"], b"RIFF")

    def publish(batch: list) -> None:  # type: ignore[type-arg]
        if batch[0]["type"] == handlers.PROGRESS:
            raise ConnectionError("pubsub unavailable")

    deps = dataclasses.replace(_deps(blobs, ProgressingEngine(), []), publish=publish, progress_interval_s=0.0)
    (out,) = handlers.on_audio_ingested(events.new_event(handlers.INGESTED, data, source="//t"), deps)
    assert out["type"] == handlers.COMPLETED
