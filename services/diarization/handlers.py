"""Diarization handler: normalized audio → raw speaker turns in the work bucket → `diarization.completed`.

The handler is a generator, so that the runtime publishes each event as it is yielded: `diarization.started`
as soon as a worker takes the job (before the long part), so the job's state shows DIARIZING while the engine
runs, then `diarization.progress` every few seconds while it runs (fraction done, audio seconds processed, time
left; see `progress.py`), then `diarization.completed`; the pull worker keeps the message's lease alive
meanwhile. Engine errors raise: Pub/Sub redelivers with backoff, and after the last attempt `job.failed`
(retriable) is published and the message goes to the dead-letter topic for ops to replay. An engine that cannot
be loaded at all fails the job at once (retrying the same worker would not help).

A dispatching worker (Vertex AI) hands the job to a GPU custom job and waits until that job runs (it then reports
itself). When the GPU path is down (the create call refused, or the job not running within the configured time) the
job still completes: this worker runs it on its own CPU engine, and the engine in its events carries a `fallback`
(`from`, `reason`, `message`) that post-processing copies into `job.completed` and the projector into the job.

The turns JSON in the work bucket is the engine's output as it came: ``segments`` (overlap-aware) and, when the
engine produced one, ``exclusive_segments`` (one speaker at a time). The key is left out, and the event has no
``num_exclusive_turns``, when the engine gives none: post-processing then derives it, so that "no exclusive
timeline" is never confused with "no speech".
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diarization.engines.base import (
    DiarizationEngine,
    DiarizationOptions,
    DiarizationResult,
    DispatchUnavailable,
    EngineUnavailable,
)
from diarization.progress import DEFAULT_INTERVAL_S, ProgressReport, ProgressReporter
from speakerline import events, failpoints, logs, storage, telemetry
from speakerline.events import (
    AudioIngested,
    DiarizationCompleted,
    DiarizationProgress,
    DiarizationStarted,
    Event,
    JobFailed,
    models,
)
from speakerline.jobpaths import JobPaths
from speakerline.runtime import Context
from speakerline.timeline import to_rttm, turns_to_json

STAGE = "diarization"


@dataclass(frozen=True)
class EngineInfo:
    name: str
    model: str
    device: str


@dataclass(frozen=True)
class Dispatched:
    """A job handed to the GPU path: where it runs, and how to wait until it runs there."""

    info: EngineInfo
    #: returns once the GPU job runs (from then on it reports itself); raises DispatchUnavailable when it will not
    wait_started: Callable[[], None] = lambda: None


#: hands the job to a Vertex AI custom job (raises DispatchUnavailable when the GPU path refuses it)
Dispatch = Callable[[AudioIngested], Dispatched]


@dataclass(frozen=True)
class DiarizationDeps:
    blobs: storage.BlobStore
    work_bucket: str
    source: str
    worker: str
    # loads once, lazily (a model load takes seconds); with `dispatch`, the CPU engine of the fallback
    engine: Callable[[], DiarizationEngine]
    engine_info: Callable[[], EngineInfo]
    # When set, the job is handed to a Vertex AI custom job running this same handler on a GPU, which
    # publishes the progress and the completion itself; this worker only records that it started, unless the
    # GPU path cannot take the job: then it runs the job on `engine` itself.
    dispatch: Dispatch | None = None
    scratch_dir: Path | None = None
    progress_interval_s: float = DEFAULT_INTERVAL_S  # least time between two progress events of a job
    # One diarization at a time per worker (the engine uses every core): a dispatching worker waits for several
    # GPU jobs to start at once, but runs its fallbacks one after the other.
    engine_lock: threading.Lock = field(default_factory=threading.Lock)


def _failed(
    cause: AudioIngested, context: Context, deps: DiarizationDeps, code: str, message: str, retriable: bool
) -> JobFailed:
    return events.job_failed(
        cause,
        job_id=cause.data.job_id,
        request=cause.data.request,
        stage=STAGE,
        code=code,
        message=message,
        retriable=retriable,
        attempt=context.attempt,
        source=deps.source,
    )


def options_of(request: models.Request) -> DiarizationOptions:
    opts = request.options
    return DiarizationOptions(opts.num_speakers, opts.min_speakers, opts.max_speakers)


def _discriminator(context: Context, deps: DiarizationDeps, tag: str = "") -> str:
    """Events about this worker's attempt at the job get ids fixed by (cause, attempt, worker, tag): a redelivery
    to the same worker repeats them exactly, another attempt or worker tells its own story."""
    return f"{context.attempt}:{deps.worker}" + (f":{tag}" if tag else "")


def _engine(name: str, model: str, device: str, fallback: models.Fallback | None) -> models.Engine:
    engine = models.Engine(name=name, model=model, device=device)
    if fallback is not None:
        engine.fallback = fallback
    return engine


def _started(
    event: AudioIngested,
    context: Context,
    deps: DiarizationDeps,
    info: EngineInfo,
    fallback: models.Fallback | None = None,
) -> DiarizationStarted:
    data = models.DiarizationStartedV1Data(
        job_id=event.data.job_id,
        request=event.data.request,
        engine=_engine(info.name, info.model, info.device, fallback),
        attempt=context.attempt,
        worker=deps.worker,
    )
    # a fallback's start follows the dispatch's start of the same attempt: it needs its own id
    discriminator = _discriminator(context, deps, tag="fallback" if fallback is not None else "")
    return DiarizationStarted.caused_by(event, data, source=deps.source, discriminator=discriminator)


def _progress(
    event: AudioIngested, context: Context, deps: DiarizationDeps, report: ProgressReport
) -> DiarizationProgress:
    data = models.DiarizationProgressV1Data(
        job_id=event.data.job_id,
        request=event.data.request,
        attempt=context.attempt,
        worker=deps.worker,
        progress=models.Progress.model_validate(report.to_json()),
    )
    discriminator = _discriminator(context, deps, tag=str(report.sequence))
    return DiarizationProgress.caused_by(event, data, source=deps.source, discriminator=discriminator)


def _run_engine(
    engine: DiarizationEngine, wav: Path, event: AudioIngested, context: Context, deps: DiarizationDeps
) -> Generator[DiarizationProgress, None, DiarizationResult]:
    """Run the engine on a worker thread and yield its progress events as they come, then return its result.

    The engine reports progress through a callback on the thread it runs on, while the runtime publishes what
    this generator yields on the handler's thread: a queue carries the reports over. An engine error is raised
    here (the runtime then NACKs). Leaving early (the generator closed) waits for the engine to finish, so that
    a worker never runs two diarizations at once.
    """
    reports: queue.Queue[ProgressReport | None] = queue.Queue()
    reporter = ProgressReporter(
        reports.put, audio_s=float(event.data.audio.duration_s), interval_s=deps.progress_interval_s
    )
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="diarize") as pool:
        future: Future[DiarizationResult] = pool.submit(
            engine.diarize, wav, options_of(event.data.request), progress=reporter
        )
        future.add_done_callback(lambda _: reports.put(None))  # after the engine's last report
        while (report := reports.get()) is not None:
            yield _progress(event, context, deps, report)
            failpoints.reached("diarization.engine", event.data.job_id)  # the engine goes on meanwhile
        return future.result()


def _fallback(event: AudioIngested, exc: DispatchUnavailable) -> models.Fallback:
    logs.get_logger().warning(
        "diarization.gpu_fallback",
        job_id=event.data.job_id,
        reason=exc.reason,
        error=exc.message,
        fallback_from=exc.engine,
    )
    return models.Fallback.model_validate({"from": exc.engine, "reason": exc.reason, "message": exc.message})


def _dispatch(
    event: AudioIngested, context: Context, deps: DiarizationDeps, dispatch: Dispatch
) -> Generator[Event[Any], None, models.Fallback | None]:
    """Hand the job to the GPU path; return None when it took the job, else the fallback to record."""
    try:
        dispatched = dispatch(event)
    except DispatchUnavailable as exc:
        return _fallback(event, exc)
    yield _started(event, context, deps, dispatched.info)  # the job shows DIARIZING while the GPU job starts
    try:
        dispatched.wait_started()
    except DispatchUnavailable as exc:
        return _fallback(event, exc)
    return None


def on_audio_ingested(event: AudioIngested, context: Context, deps: DiarizationDeps) -> Iterator[Event[Any]]:
    fallback = None
    if deps.dispatch is not None:
        fallback = yield from _dispatch(event, context, deps, deps.dispatch)
        if fallback is None:
            return
    with deps.engine_lock:
        yield from _diarize(event, context, deps, fallback)


def _diarize(
    event: AudioIngested, context: Context, deps: DiarizationDeps, fallback: models.Fallback | None
) -> Iterator[Event[Any]]:
    """Run the job on this worker's engine: started, progress while it runs, completed."""
    data = event.data
    job_id = data.job_id
    try:
        engine = deps.engine()
        info = deps.engine_info()
    except EngineUnavailable as exc:
        message = f"No diarization engine could be loaded: {exc}"
        if fallback is not None:  # the GPU path may be back later: submitting again can succeed
            message = (
                f"The GPU path could not take the job ({fallback.message}) and no CPU engine could be loaded: {exc}"
            )
        yield _failed(event, context, deps, "engine_unavailable", message, fallback is not None)
        return
    yield _started(event, context, deps, info, fallback)

    with tempfile.TemporaryDirectory(dir=deps.scratch_dir, prefix="diarization-") as tmp:
        wav = Path(tmp) / "audio.wav"
        deps.blobs.download(data.audio.uri, wav)
        result = yield from _run_engine(engine, wav, event, context, deps)
    turns = list(result.turns)
    raw: dict[str, Any] = {"segments": turns_to_json(turns)}
    exclusive = list(result.exclusive_turns)
    if exclusive:
        raw["exclusive_segments"] = turns_to_json(exclusive)
    paths = JobPaths(job_id)
    turns_uri = storage.uri(deps.work_bucket, paths.raw_turns)
    rttm_uri = storage.uri(deps.work_bucket, paths.raw_rttm)
    deps.blobs.upload_bytes(json.dumps(raw).encode(), turns_uri, "application/json")
    # no service reads raw.rttm (postprocess reads the turns JSON): it is there for the event's other consumers, as
    # diarization.completed v1 requires rttm_uri (only a v2 could drop it)
    deps.blobs.upload_bytes(to_rttm(turns, job_id).encode(), rttm_uri, "text/plain")
    timings = {k: round(float(v), 3) for k, v in result.timings.items() if k in ("load_s", "inference_s", "rtf")}
    timings.setdefault("inference_s", 0.0)
    timings.setdefault("rtf", 0.0)
    telemetry.engine_rtf(result.engine, str(result.device or "cpu"), timings["rtf"])
    summary = models.DiarizationCompletedResult(
        turns_uri=turns_uri, rttm_uri=rttm_uri, num_speakers=len(result.speakers), num_turns=len(turns)
    )
    if exclusive:
        summary.num_exclusive_turns = len(exclusive)
    completed = models.DiarizationCompletedV1Data(
        job_id=job_id,
        request=data.request,
        audio=data.audio,
        engine=_engine(result.engine, result.model, result.device, fallback),
        result=summary,
        timings=models.Timings.model_validate(timings),
    )
    yield DiarizationCompleted.caused_by(event, completed, source=deps.source)


def on_exhausted(
    event: AudioIngested, context: Context, error: BaseException, deps: DiarizationDeps
) -> list[Event[Any]]:
    return [
        events.gave_up(
            event, stage=STAGE, code="engine_error", error=error, attempt=context.attempt, source=deps.source
        )
    ]
