"""When the GPU path is down the job still completes, on the worker's own CPU engine, and says why.

The decisions (`VertexAIDispatcher.submit` / `wait_started`) are tested with a fake job client and a fake clock;
the handler with scripted dispatches; the whole worker through `build_service` with the real Vertex AI client
talking REST to a fake of the API on 127.0.0.1 (`fake_vertex.py`, as the e2e test does).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest
from google.api_core import exceptions as _api_exceptions
from google.auth import exceptions as _auth_exceptions

from diarization import handlers, wiring
from diarization.engines import vertex
from diarization.engines.base import DispatchUnavailable, Progress
from diarization.engines.vertex import (
    GPU_DISPATCH_REFUSED,
    GPU_START_FAILED,
    GPU_START_TIMEOUT,
    VertexAIDispatcher,
    VertexConfig,
)
from speakerline import events, runtime
from speakerline.bootstrap import Platform, build_service
from speakerline.events import AudioIngested, DiarizationCompleted, DiarizationProgress, DiarizationStarted
from speakerline.settings import Settings
from tests.fakes import (
    VERTEX_JOB,
    FakeClock,
    FakeJobClient,
    MemoryBlobStore,
    RecordingPublisher,
    ScriptedEngine,
    handler_context,
)

from . import fake_vertex
from .handler_harness import diarization_deps, ingested, run_handler

api_exceptions: Any = _api_exceptions  # untyped constructors
auth_exceptions: Any = _auth_exceptions
SUBSCRIPTION = "diarization-audio-ingested"


def dispatcher(
    client: Any, clock: FakeClock | None = None, start_timeout_s: float = 60.0, poll_s: float = 5.0
) -> VertexAIDispatcher:
    clock = clock or FakeClock()
    config = VertexConfig(
        project="acme-prod", region="europe-west4", image_uri="img:1", start_timeout_s=start_timeout_s, poll_s=poll_s
    )
    return VertexAIDispatcher(config, client, subscription=SUBSCRIPTION, clock=clock, sleep=clock.sleep)


def job(state: Any, start_time: Any = None) -> SimpleNamespace:
    return SimpleNamespace(name=VERTEX_JOB, state=state, start_time=start_time)


# --- the dispatcher's decisions -------------------------------------------------------------------------------


class RefusingClient(FakeJobClient):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def create_custom_job(self, *, request: Any, timeout: float) -> Any:
        self.requests.append(request)
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        api_exceptions.ResourceExhausted("Quota exceeded for aiplatform.googleapis.com/custom_model_training_l4"),
        api_exceptions.PermissionDenied("Permission 'aiplatform.customJobs.create' denied"),
        api_exceptions.ServiceUnavailable("connection reset"),
        auth_exceptions.DefaultCredentialsError("Your default credentials were not found"),
        ConnectionError("network unreachable"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_refused_create_call_means_fallback(error: Exception) -> None:
    client = RefusingClient(error)
    with pytest.raises(DispatchUnavailable) as raised:
        dispatcher(client).dispatch(ingested())
    assert (raised.value.engine, raised.value.reason) == ("vertex", GPU_DISPATCH_REFUSED)
    assert type(error).__name__ in raised.value.message and str(error) in raised.value.message
    assert len(client.requests) == 1 and client.gets == [] and client.cancels == []


@pytest.mark.slow
def test_a_client_that_cannot_be_made_means_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.cloud import aiplatform_v1

    def broken(**options: Any) -> Any:
        raise auth_exceptions.DefaultCredentialsError("no credentials")

    monkeypatch.setattr(aiplatform_v1, "JobServiceClient", broken)
    platform = Platform("diarization", Settings(project="acme-prod", vertex_region="europe-west4"))
    with pytest.raises(DispatchUnavailable) as raised:
        dispatcher(platform.vertex_jobs).dispatch(ingested())
    assert raised.value.reason == GPU_DISPATCH_REFUSED and "no credentials" in raised.value.message


def test_a_job_pending_past_the_timeout_is_cancelled_and_falls_back() -> None:
    client = FakeJobClient(states=("JOB_STATE_QUEUED", "JOB_STATE_PENDING"))
    clock = FakeClock()
    d = dispatcher(client, clock, start_timeout_s=12.0, poll_s=5.0)
    name = d.dispatch(ingested())
    with pytest.raises(DispatchUnavailable) as raised:
        d.wait_started(name, job_id="job_j9_vertex")
    assert raised.value.reason == GPU_START_TIMEOUT
    assert "did not start within 12 s" in raised.value.message and "JOB_STATE_PENDING" in raised.value.message
    assert VERTEX_JOB in raised.value.message
    # looked every poll_s (the last wait cut to the deadline), then cancelled the job it gave up on
    assert clock.sleeps == [5.0, 5.0, 2.0] and len(client.gets) == 4
    assert client.cancels == [VERTEX_JOB]


def test_a_job_running_in_time_is_left_to_report_itself() -> None:
    client = FakeJobClient(states=("JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING"))
    clock = FakeClock()
    d = dispatcher(client, clock, start_timeout_s=900.0)
    d.wait_started(d.dispatch(ingested()), job_id="job_j9_vertex")
    assert client.gets == [VERTEX_JOB] * 3 and clock.sleeps == [5.0, 5.0] and client.cancels == []


@pytest.mark.parametrize(
    "seen",
    [
        job("JOB_STATE_SUCCEEDED"),  # ran between two looks
        job("JOB_STATE_PARTIALLY_SUCCEEDED"),
        job("JOB_STATE_FAILED", start_time="2026-11-20T09:30:00Z"),  # ran and failed: it reported that itself
        job("JOB_STATE_CANCELLED", start_time="2026-11-20T09:30:00Z"),
    ],
    ids=lambda j: f"{j.state}{'-started' if j.start_time else ''}",
)
def test_a_job_that_ran_is_never_redone_here(seen: SimpleNamespace) -> None:
    client = FakeJobClient(states=(seen,))
    dispatcher(client).wait_started(VERTEX_JOB, job_id="j")
    assert client.cancels == []


@pytest.mark.parametrize("state", ["JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"])
def test_a_job_that_ended_before_it_started_falls_back_at_once(state: str) -> None:
    client = FakeJobClient(states=("JOB_STATE_PENDING", state))
    clock = FakeClock()
    with pytest.raises(DispatchUnavailable) as raised:
        dispatcher(client, clock).wait_started(VERTEX_JOB, job_id="j")
    assert raised.value.reason == GPU_START_FAILED and state in raised.value.message
    assert clock.sleeps == [5.0] and client.cancels == []  # nothing left to cancel


def test_real_job_protos_are_understood() -> None:
    from google.cloud import aiplatform_v1

    running = aiplatform_v1.CustomJob(name=VERTEX_JOB, state=aiplatform_v1.JobState.JOB_STATE_RUNNING)
    dispatcher(FakeJobClient(states=(running,))).wait_started(VERTEX_JOB, job_id="j")
    pending = aiplatform_v1.CustomJob(name=VERTEX_JOB, state=aiplatform_v1.JobState.JOB_STATE_PENDING)
    client = FakeJobClient(states=(pending,))
    with pytest.raises(DispatchUnavailable, match="JOB_STATE_PENDING"):
        dispatcher(client, start_timeout_s=10.0).wait_started(VERTEX_JOB, job_id="j")
    assert client.cancels == [VERTEX_JOB]


def test_a_failed_look_is_retried_until_the_deadline() -> None:
    client = FakeJobClient(states=(api_exceptions.ServiceUnavailable("blip"), "JOB_STATE_RUNNING"))
    dispatcher(client).wait_started(VERTEX_JOB, job_id="j")
    assert len(client.gets) == 2 and client.cancels == []


def test_a_failed_cancel_still_falls_back() -> None:
    class NoCancel(FakeJobClient):
        def cancel_custom_job(self, *, name: str, timeout: float) -> Any:
            super().cancel_custom_job(name=name, timeout=timeout)
            raise api_exceptions.InternalServerError("try again")

    client = NoCancel(states=("JOB_STATE_PENDING",))
    with pytest.raises(DispatchUnavailable) as raised:
        dispatcher(client, start_timeout_s=10.0).wait_started(VERTEX_JOB, job_id="j")
    assert raised.value.reason == GPU_START_TIMEOUT and client.cancels == [VERTEX_JOB]


def test_timeouts_come_from_the_settings() -> None:
    base: dict[str, Any] = {"project": "p", "vertex_region": "us-central1", "vertex_image": "img"}
    default = VertexConfig.from_settings(Settings(**base))
    assert default.start_timeout_s == vertex.DEFAULT_START_TIMEOUT_S
    configured = VertexConfig.from_settings(Settings(**base, gpu_start_timeout_s=5))
    assert configured.start_timeout_s == 5.0
    with pytest.raises(ValueError, match="start_timeout_s"):
        VertexConfig(project="p", region="r", image_uri="i", start_timeout_s=0)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAKERLINE_GPU_START_TIMEOUT_S", "5")
    monkeypatch.setenv("SPEAKERLINE_VERTEX_API_ENDPOINT", "http://127.0.0.1:9")
    settings = Settings()
    assert (settings.gpu_start_timeout_s, settings.vertex_api_endpoint) == (5.0, "http://127.0.0.1:9")
    monkeypatch.setenv("SPEAKERLINE_GPU_START_TIMEOUT_S", "0")
    with pytest.raises(ValueError, match="SPEAKERLINE_GPU_START_TIMEOUT_S"):
        Settings()


# --- the handler ---------------------------------------------------------------------------------------------


def cpu_fallback_engine() -> ScriptedEngine:
    """Stands in for the embedded engine (which takes seconds to load)."""
    return ScriptedEngine(
        name="embedded",
        model="segmentation-3.0+campplus",
        timings={"inference_s": 0.5},
        progress_steps=(Progress(fraction=1.0, stage="clustering"),),
    )


def _deps(blobs: MemoryBlobStore, engine: ScriptedEngine, dispatch: handlers.Dispatch) -> handlers.DiarizationDeps:
    return diarization_deps(blobs, engine, dispatch=dispatch, progress_interval_s=0.0)


VERTEX = handlers.EngineInfo("vertex", "pyannote/speaker-diarization-3.1", "NVIDIA_L4")


def _event(blobs: MemoryBlobStore) -> AudioIngested:
    event = ingested()
    blobs.put(event.data.audio.uri, b"RIFF")
    return event


def test_refused_dispatch_runs_the_job_here_and_says_why(blobs: MemoryBlobStore) -> None:
    def refuse(event: AudioIngested) -> handlers.Dispatched:
        raise DispatchUnavailable("vertex", GPU_DISPATCH_REFUSED, "ResourceExhausted: 429 quota")

    engine = cpu_fallback_engine()
    out = run_handler(_event(blobs), _deps(blobs, engine, refuse))

    assert [type(e) for e in out] == [DiarizationStarted, DiarizationProgress, DiarizationCompleted]
    fallback = {"from": "vertex", "reason": GPU_DISPATCH_REFUSED, "message": "ResourceExhausted: 429 quota"}
    started, completed = out[0].payload()["engine"], out[-1].payload()["engine"]
    assert started == {"name": "embedded", "model": "segmentation-3.0+campplus", "device": "cpu", "fallback": fallback}
    assert completed == started
    assert len(engine.calls) == 1
    assert out[-1].data.result.turns_uri in blobs.objects


def test_a_gpu_job_that_does_not_start_is_run_here_after_its_own_start(blobs: MemoryBlobStore) -> None:
    waited: list[str] = []

    def timeout() -> None:
        waited.append("waited")
        raise DispatchUnavailable("vertex", GPU_START_TIMEOUT, "did not start within 900 s")

    engine = cpu_fallback_engine()
    deps = _deps(blobs, engine, lambda event: handlers.Dispatched(VERTEX, wait_started=timeout))
    out = run_handler(_event(blobs), deps)

    assert [type(e) for e in out] == [DiarizationStarted, DiarizationStarted, DiarizationProgress, DiarizationCompleted]
    assert out[0].payload()["engine"] == {"name": "vertex", "model": VERTEX.model, "device": "NVIDIA_L4"}
    assert out[1].payload()["engine"]["fallback"]["reason"] == GPU_START_TIMEOUT
    assert out[1].id != out[0].id  # the fallback's start is not taken for a duplicate of the dispatch's
    assert out[-1].payload()["engine"]["name"] == "embedded"
    assert out[-1].payload()["engine"]["fallback"] == out[1].payload()["engine"]["fallback"]
    assert waited == ["waited"] and len(engine.calls) == 1


def test_a_gpu_job_that_starts_in_time_leaves_the_cpu_engine_alone(blobs: MemoryBlobStore) -> None:
    def never() -> ScriptedEngine:
        raise AssertionError("the fallback engine must not be loaded")

    def started_in_time(event: AudioIngested) -> handlers.Dispatched:
        return handlers.Dispatched(VERTEX)

    deps = dataclasses.replace(_deps(blobs, cpu_fallback_engine(), started_in_time), engine=never)
    (started,) = run_handler(_event(blobs), deps)
    assert isinstance(started, DiarizationStarted) and "fallback" not in started.payload()["engine"]


def test_a_fallback_without_a_cpu_engine_fails_the_job_as_retriable(blobs: MemoryBlobStore) -> None:
    from diarization.engines.base import EngineUnavailable

    def refuse(event: AudioIngested) -> handlers.Dispatched:
        raise DispatchUnavailable("vertex", GPU_DISPATCH_REFUSED, "quota")

    def broken() -> ScriptedEngine:
        raise EngineUnavailable("weights missing")

    deps = dataclasses.replace(_deps(blobs, cpu_fallback_engine(), refuse), engine=broken)
    (failed,) = run_handler(_event(blobs), deps)
    error = failed.payload()["error"]
    assert isinstance(failed, events.JobFailed) and error["code"] == "engine_unavailable"
    assert error["retriable"] is True and "quota" in error["message"] and "weights missing" in error["message"]


# --- the wired worker, with the real client against a fake Vertex AI ---------------------------------------------


def _service(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, engine: ScriptedEngine, blobs: MemoryBlobStore
) -> runtime.ServiceDef:
    monkeypatch.setattr(wiring, "_engine", lambda name, settings: engine if name == "embedded" else None)
    settings = Settings(
        project="p",
        engine="vertex",
        vertex_region="us-central1",
        vertex_image="img",
        vertex_api_endpoint=endpoint,
        gpu_start_timeout_s=0.3,
    )
    return build_service("diarization", settings, publisher=RecordingPublisher(), blobs=blobs)


def test_the_wired_worker_falls_back_on_a_refusing_and_on_a_never_starting_vertex(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def behaviour(custom_job: dict[str, Any]) -> fake_vertex.Behaviour:
        job_id = fake_vertex.dispatched_event(custom_job).data.job_id
        return fake_vertex.REFUSE if job_id.startswith("job_refuse") else fake_vertex.PENDING

    engine = cpu_fallback_engine()
    with fake_vertex.serve(behaviour) as fake:
        blobs = MemoryBlobStore()
        service = _service(monkeypatch, fake.url, engine, blobs)
        route = service.routes["on_audio_ingested"]
        assert route.concurrency == wiring.DISPATCH_CONCURRENCY > 1 and service.warm_up is None
        outcomes = {}
        for job_id in ("job_refuse_0001", "job_pending_0001"):
            event = ingested(job_id=job_id)
            blobs.put(event.data.audio.uri, b"RIFF")
            outcomes[job_id] = list(route.handler(event, handler_context()))
        assert len(fake.creates) == 2 and len(fake.jobs) == 1
        (pending,) = fake.jobs
        assert fake.cancels == [pending] and fake.jobs[pending]["state"] == "JOB_STATE_CANCELLING"

    refused = outcomes["job_refuse_0001"]
    assert [e.TYPE for e in refused] == [DiarizationStarted.TYPE, DiarizationProgress.TYPE, DiarizationCompleted.TYPE]
    fallback = refused[-1].payload()["engine"]["fallback"]
    assert (fallback["from"], fallback["reason"]) == ("vertex", GPU_DISPATCH_REFUSED)
    assert "429" in fallback["message"] and "exceed quota limits" in fallback["message"]

    timed_out = outcomes["job_pending_0001"]
    assert [e.payload()["engine"]["name"] for e in timed_out if isinstance(e, DiarizationStarted)] == [
        "vertex",
        "embedded",
    ]
    fallback = timed_out[-1].payload()["engine"]["fallback"]
    assert fallback["reason"] == GPU_START_TIMEOUT and pending in fallback["message"]
    assert len(engine.calls) == 2
