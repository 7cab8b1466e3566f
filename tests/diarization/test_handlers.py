"""Diarization handler with an engine double behind the engine interface (engines have their own tests)."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from diarization import handlers, wiring
from diarization.engines.base import (
    DiarizationOptions,
    DiarizationResult,
    EngineUnavailable,
    Progress,
)
from diarization.progress import DEFAULT_INTERVAL_S
from speakerline import events, runtime
from speakerline.audio.limits import MediaLimits
from speakerline.bootstrap import Platform, build_service
from speakerline.events import (
    AudioIngested,
    DiarizationCompleted,
    DiarizationProgress,
    DiarizationStarted,
    JobFailed,
)
from speakerline.settings import Settings
from speakerline.timeline import Turn, parse_rttm
from tests.fakes import MemoryBlobStore, RecordingPublisher, ScriptedEngine, handler_context

from .handler_harness import diarization_deps, ingested, run_handler


def test_started_is_yielded_first_then_completed_with_results_in_the_work_bucket(blobs, example) -> None:
    data = example("audio.ingested")
    blobs.put(data["audio"]["uri"], b"RIFF-the-normalized-audio")
    engine = ScriptedEngine()
    event = ingested(data)

    started, out = run_handler(event, diarization_deps(blobs, engine))

    assert isinstance(started, DiarizationStarted)
    assert started.payload()["engine"] == {"name": "scripted", "model": "test-model", "device": "cpu"}
    assert (started.data.attempt, started.data.worker) == (1, "w1")
    assert engine.calls == [(b"RIFF-the-normalized-audio", DiarizationOptions(None, 2, 4))]
    assert isinstance(out, DiarizationCompleted) and out.TYPE == DiarizationCompleted.TYPE
    result = out.payload()["result"]
    assert (result["num_speakers"], result["num_turns"]) == (2, 2)
    segments = json.loads(blobs.read_bytes(result["turns_uri"]))["segments"]
    assert segments[0] == {"speaker": "spk_a", "start": 0.0, "end": 1.5, "duration": 1.5}
    assert len(parse_rttm(blobs.read_bytes(result["rttm_uri"]).decode())[data["job_id"]]) == 2


def test_the_started_event_is_yielded_before_the_engine_runs(blobs, example) -> None:
    # The runtime publishes each yielded event at once: the job must show DIARIZING during the long part.
    data = example("audio.ingested")
    blobs.put(data["audio"]["uri"], b"RIFF")
    engine = ScriptedEngine()
    outputs = handlers.on_audio_ingested(ingested(data), handler_context(), diarization_deps(blobs, engine))
    assert isinstance(next(outputs), DiarizationStarted)
    assert engine.calls == []
    assert [type(e) for e in outputs] == [DiarizationCompleted]
    assert len(engine.calls) == 1


def test_event_ids_are_derived_from_the_cause_attempt_and_worker(blobs, example) -> None:
    data = example("audio.ingested")
    blobs.put(data["audio"]["uri"], b"RIFF")
    event = ingested(data)
    deps = diarization_deps(blobs, ScriptedEngine())

    first, again = run_handler(event, deps), run_handler(event, deps)
    assert [e.id for e in first] == [e.id for e in again]  # a redelivery repeats the very same events
    retried = run_handler(event, deps, handler_context(attempt=2))
    assert retried[0].id != first[0].id and retried[0].data.attempt == 2  # another attempt tells its own story
    assert retried[1].id == first[1].id  # the completion is one per job, whatever the attempt
    elsewhere = run_handler(event, dataclasses.replace(deps, worker="w2"))
    assert elsewhere[0].id != first[0].id and elsewhere[0].data.worker == "w2"
    assert first[0].id == DiarizationStarted.caused_by(event, first[0].data, source="//x", discriminator="1:w1").id


def test_the_engines_exclusive_timeline_is_stored_beside_the_raw_turns(blobs, example) -> None:
    data = example("audio.ingested")
    blobs.put(data["audio"]["uri"], b"RIFF")
    exclusive = (Turn(0.0, 1.25, "spk_a"), Turn(1.25, 2.5, "spk_b"), Turn(2.5, 3.0, "spk_a"))

    _, out = run_handler(ingested(data), diarization_deps(blobs, ScriptedEngine(exclusive=exclusive)))

    result = out.payload()["result"]  # validated against the (extended) schema in _run
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
    _, out = run_handler(ingested(data), diarization_deps(blobs, ScriptedEngine()))
    result = out.payload()["result"]
    assert "num_exclusive_turns" not in result
    assert set(json.loads(blobs.read_bytes(result["turns_uri"]))) == {"segments"}


def test_an_engine_that_cannot_load_fails_the_job_without_retrying(blobs, example) -> None:
    event = ingested(example("audio.ingested"))
    outputs = run_handler(event, diarization_deps(blobs, EngineUnavailable("no model")), handler_context(attempt=3))
    (out,) = outputs  # nothing else: no diarization.started for a job that never started
    assert isinstance(out, JobFailed) and out.TYPE == JobFailed.TYPE
    error = out.payload()["error"]
    assert (error["code"], error["retriable"], error["stage"]) == ("engine_unavailable", False, "diarization")
    assert out.data.attempt == 3


def test_an_engine_error_propagates_out_of_the_generator(blobs, example) -> None:
    # The runtime must see the failure (and NACK) after diarization.started went out.
    class BrokenEngine(ScriptedEngine):
        def diarize(self, audio_path: Path, options: DiarizationOptions, progress: object = None) -> Any:
            raise RuntimeError("CUDA error")

    data = example("audio.ingested")
    blobs.put(data["audio"]["uri"], b"RIFF")
    outputs = handlers.on_audio_ingested(ingested(data), handler_context(), diarization_deps(blobs, BrokenEngine()))
    assert isinstance(next(outputs), DiarizationStarted)
    with pytest.raises(RuntimeError, match="CUDA error"):
        next(outputs)


def test_exhausted_retries_fail_the_job_as_retriable(blobs, example) -> None:
    event = ingested(example("audio.ingested"))
    (out,) = handlers.on_exhausted(
        event, handler_context(5, final=True), RuntimeError("CUDA error"), diarization_deps(blobs, None)
    )
    events.to_pubsub(out)
    assert isinstance(out, JobFailed)
    error = out.payload()["error"]
    assert (error["code"], error["retriable"]) == ("engine_error", True)
    assert "CUDA error" in error["message"]
    assert out.data.attempt == 5


def test_a_dispatching_worker_only_says_the_job_started(blobs, example) -> None:
    dispatched: list[AudioIngested] = []

    def dispatch(event: AudioIngested) -> handlers.Dispatched:
        dispatched.append(event)
        return handlers.Dispatched(handlers.EngineInfo("vertex", "pyannote/speaker-diarization-3.1", "NVIDIA_L4"))

    event = ingested(example("audio.ingested"))
    deps = dataclasses.replace(diarization_deps(blobs, EngineUnavailable("never loaded here")), dispatch=dispatch)
    (started,) = run_handler(event, deps)
    assert isinstance(started, DiarizationStarted)
    assert started.payload()["engine"] == {
        "name": "vertex",
        "model": "pyannote/speaker-diarization-3.1",
        "device": "NVIDIA_L4",
    }
    assert dispatched == [event]


class ProgressingEngine(ScriptedEngine):
    """Reports progress as a real engine does: many small steps, then returns."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[threading.Thread] = []

    def diarize(self, audio_path: Path, options: DiarizationOptions, progress: object = None) -> DiarizationResult:
        assert callable(progress)
        self.threads.append(threading.current_thread())
        for step in range(1, 11):
            progress(Progress(fraction=step / 10, stage="embeddings"))
        return super().diarize(audio_path, options)


def test_progress_is_yielded_while_the_engine_runs_throttled_and_validated(blobs, example) -> None:
    data = example("audio.ingested")
    blobs.put(data["audio"]["uri"], b"RIFF")
    engine = ProgressingEngine()
    deps = dataclasses.replace(diarization_deps(blobs, engine), progress_interval_s=3600.0)
    event = ingested(data)

    published = run_handler(event, deps)

    # started, then one report: the throttle holds the next nine back (an hour between reports here)
    assert [e.TYPE for e in published] == [DiarizationStarted.TYPE, DiarizationProgress.TYPE, DiarizationCompleted.TYPE]
    report = published[1].payload()
    assert report["job_id"] == data["job_id"] and report["worker"] == "w1" and report["attempt"] == 1
    progress = report["progress"]
    assert (progress["fraction"], progress["stage"], progress["sequence"]) == (0.1, "embeddings", 1)
    assert progress["processed_audio_s"] == round(0.1 * data["audio"]["duration_s"], 3)
    assert isinstance(published[-1], DiarizationCompleted)
    assert engine.threads[0] is not threading.current_thread()  # the engine runs beside the yielding handler

    unthrottled = dataclasses.replace(deps, progress_interval_s=0.0)
    published = run_handler(event, unthrottled)
    assert isinstance(published[0], DiarizationStarted) and isinstance(published[-1], DiarizationCompleted)
    fractions = [e.data.progress.fraction for e in published if isinstance(e, DiarizationProgress)]
    assert fractions == [step / 10 for step in range(1, 11)]
    ids = [e.id for e in published if isinstance(e, DiarizationProgress)]
    assert len(set(ids)) == 10  # one id per report; the same report of a redelivery gets the same id
    assert ids == [e.id for e in run_handler(event, unthrottled) if isinstance(e, DiarizationProgress)]


def test_progress_events_are_published_as_the_engine_reports_them(blobs, example) -> None:
    """Each report is yielded while the engine still runs, not collected until it returns."""
    data = example("audio.ingested")
    blobs.put(data["audio"]["uri"], b"RIFF")
    reported, proceed = threading.Event(), threading.Event()

    class SteppedEngine(ScriptedEngine):
        def diarize(self, audio_path: Path, options: DiarizationOptions, progress: Any = None) -> DiarizationResult:
            progress(Progress(fraction=0.5, stage="embeddings"))
            reported.set()
            assert proceed.wait(10), "the handler did not hand the report over while the engine ran"
            return super().diarize(audio_path, options)

    outputs = handlers.on_audio_ingested(ingested(data), handler_context(), diarization_deps(blobs, SteppedEngine()))
    assert isinstance(next(outputs), DiarizationStarted)
    half = next(outputs)  # the engine is still running: it waits for `proceed`
    assert isinstance(half, DiarizationProgress) and half.data.progress.fraction == 0.5
    assert reported.is_set() and not proceed.is_set()
    proceed.set()
    assert [type(e) for e in outputs] == [DiarizationCompleted]


def test_a_failing_progress_publish_does_not_fail_the_job(blobs, example) -> None:
    # Progress is best effort: losing a report must not throw away (and redo) hours of diarization.
    data = example("audio.ingested")
    blobs.put(data["audio"]["uri"], b"RIFF")

    class FlakyPublisher(RecordingPublisher):
        def publish(self, events: Any) -> list[str]:
            if events[0].TYPE == DiarizationProgress.TYPE:
                raise ConnectionError("pubsub unavailable")
            return super().publish(events)

    publisher = FlakyPublisher()
    deps = dataclasses.replace(diarization_deps(blobs, ProgressingEngine()), progress_interval_s=0.0)
    service = runtime.ServiceDef(
        name="diarization",
        routes={
            "on_audio_ingested": runtime.Route(
                lambda e, c: handlers.on_audio_ingested(e, c, deps),
                (AudioIngested,),
                best_effort=wiring_route().best_effort,
            )
        },
        publisher=publisher,
        topology=Settings().topology,
    )
    body, attributes = events.to_pubsub(ingested(data))
    sub = service.topology.subscriptions["diarization-audio-ingested"]
    outcome = runtime.process(service, sub, runtime.Delivery(body, attributes, "m1", 1))
    assert outcome is runtime.Outcome.ACK
    assert publisher.types()[-1] == DiarizationCompleted.TYPE


def wiring_route() -> runtime.Route:
    settings = Settings(project="p", engine="embedded")
    return build_service("diarization", settings, publisher=RecordingPublisher(), blobs=MemoryBlobStore()).routes[
        "on_audio_ingested"
    ]


def test_build_service_wires_the_audio_ingested_route_with_the_configured_interval() -> None:
    settings = Settings(project="p", engine="embedded", progress_interval_s=0.5)
    service = build_service("diarization", settings, publisher=RecordingPublisher(), blobs=MemoryBlobStore())

    route = service.routes["on_audio_ingested"]
    assert set(service.routes) == {"on_audio_ingested"}
    assert route.accepts == (AudioIngested,)
    assert route.concurrency == 1 and route.max_lease_s == wiring.MAX_LEASE_S
    # the lease outlasts the longest recording ingest accepts, diarized on one CPU thread (RTF ~0.2, bench-long)
    assert route.max_lease_s >= 0.2 * MediaLimits().max_duration_s
    assert route.best_effort == (DiarizationProgress,)
    assert route.on_exhausted is not None and service.warm_up is not None
    deps = wiring.build_deps(Platform("diarization", settings, blobs=MemoryBlobStore()))
    assert isinstance(deps, handlers.DiarizationDeps)
    assert deps.progress_interval_s == 0.5
    assert deps.dispatch is None and deps.work_bucket == settings.bucket("work")
    assert deps.source == "//speakerline/services/diarization"
    (sub,) = settings.topology.subscriptions_of("diarization")
    assert route is service.route(sub)


def test_without_a_configured_interval_progress_uses_the_services_default() -> None:
    platform = Platform("diarization", Settings(project="p", engine="embedded"), blobs=MemoryBlobStore())
    deps = wiring.build_deps(platform)
    assert deps.progress_interval_s == DEFAULT_INTERVAL_S
