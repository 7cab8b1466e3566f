"""Wiring of the diarization service: its one handler, its deps, the engine it loads (once per process).

Run it as `python -m speakerline.worker diarization` (unary pull, one job at a time: GPU hosts without
ingress), behind a push subscription (`speakerline.push:http_entrypoint`; CPU only, for small deployments), or, in
a Vertex AI custom job, as `python -m speakerline.worker diarization --envelope FILE` (one job, see
`engines/vertex.py`). With `SPEAKERLINE_ENGINE=vertex` (or `SPEAKERLINE_VERTEX_DISPATCH`) the worker hands every
job to such a custom job and diarizes nothing itself, unless the GPU path cannot take the job (Vertex AI refuses
it, or it does not start within `SPEAKERLINE_GPU_START_TIMEOUT_S`): then it runs the job on the embedded CPU
engine, loaded on the first such job and kept.
"""

from __future__ import annotations

from functools import cache, partial

from diarization import handlers
from diarization.engines import select
from diarization.engines.base import DiarizationEngine
from diarization.progress import DEFAULT_INTERVAL_S
from speakerline import logs
from speakerline.bootstrap import Platform, Wiring
from speakerline.events import AudioIngested, DiarizationProgress
from speakerline.runtime import Route
from speakerline.settings import Settings, or_default

NAME = "diarization"
HANDLER = "on_audio_ingested"
# The client extends a job's lease while it runs, for up to this long: a 24-hour recording (ingest's limit)
# takes about 5 h on one CPU thread (RTF ~0.2, `make bench-long`) and well under 1 h on a GPU; the rest is
# margin for a shared or slow machine. Past this, Pub/Sub redelivers the job to another worker.
MAX_LEASE_S = 12 * 3600
# A dispatching worker mostly waits (for a custom job to start running, minutes each): it waits for several at
# once, so that a burst is not handed to Vertex one job per start-up time. Its CPU fallbacks still run one at a
# time (`DiarizationDeps.engine_lock`).
DISPATCH_CONCURRENCY = 8


@cache
def _engine(name: str, settings: Settings) -> DiarizationEngine:
    """The engine, loaded on first use and kept for the life of the process (a model load takes seconds)."""
    return select.load(name, settings)


def _engine_info(name: str, settings: Settings) -> handlers.EngineInfo:
    engine = _engine(name, settings)
    return handlers.EngineInfo(
        engine.name, str(getattr(engine, "model", engine.name)), str(getattr(engine, "device", "cpu"))
    )


def _warm_up(name: str, settings: Settings) -> None:
    """Load the model before taking work, so the first job is not slow and a broken setup shows at start."""
    log = logs.get_logger()
    try:
        info = _engine_info(name, settings)
        log.info("engine ready", engine=info.name, model=info.model, device=info.device)
    except Exception as exc:  # the handler reports engine_unavailable per job; the worker must not crash-loop
        log.error("engine could not be loaded; jobs will fail with engine_unavailable", error=str(exc))


def _vertex_dispatch(platform: Platform) -> handlers.Dispatch:
    from diarization.engines.vertex import VertexAIDispatcher, VertexConfig

    settings = platform.settings
    # the custom job gets the event as a push envelope of this service's subscription, as if pushed to it
    (subscription,) = [s.name for s in settings.topology.subscriptions_of(NAME) if s.handler == HANDLER]
    dispatcher = VertexAIDispatcher(
        VertexConfig.from_settings(settings), platform.vertex_jobs, subscription=subscription
    )

    def dispatch(event: AudioIngested) -> handlers.Dispatched:
        name = dispatcher.dispatch(event)
        return handlers.Dispatched(
            handlers.EngineInfo(dispatcher.name, dispatcher.model, dispatcher.accelerator),
            wait_started=partial(dispatcher.wait_started, name, job_id=event.data.job_id),
        )

    return dispatch


def _engine_name(settings: Settings) -> tuple[str, bool]:
    """The engine this worker loads, and whether it dispatches jobs to Vertex AI (its engine is then the CPU
    fallback's, for when the GPU path cannot take a job)."""
    name = select.EngineConfig.from_settings(settings).engine
    dispatching = name == "vertex"
    return ("embedded" if dispatching else name), dispatching


def build_deps(platform: Platform) -> handlers.DiarizationDeps:
    """The handler's deps, from the platform's adapters (blobs, the Vertex AI client) and settings."""
    settings = platform.settings
    name, dispatching = _engine_name(settings)
    interval = settings.progress_interval_s
    return handlers.DiarizationDeps(
        blobs=platform.blobs,
        work_bucket=platform.bucket("work"),
        source=platform.source,
        worker=platform.worker,
        engine=partial(_engine, name, settings),
        engine_info=partial(_engine_info, name, settings),
        dispatch=_vertex_dispatch(platform) if dispatching else None,
        # least time between two progress events of a job (seconds)
        progress_interval_s=or_default(interval, DEFAULT_INTERVAL_S),
    )


def wire(platform: Platform) -> Wiring:
    name, dispatching = _engine_name(platform.settings)
    deps = build_deps(platform)
    route = Route(
        partial(handlers.on_audio_ingested, deps=deps),
        accepts=(AudioIngested,),
        on_exhausted=partial(handlers.on_exhausted, deps=deps),
        # one job at a time per worker (the engine uses the whole GPU, or all CPU cores), unless it mostly waits
        concurrency=DISPATCH_CONCURRENCY if dispatching else 1,
        max_lease_s=MAX_LEASE_S,
        best_effort=(DiarizationProgress,),  # losing a progress report must not redo the job
    )
    # a dispatching worker loads its (fallback) engine only when it first needs it
    warm_up = None if dispatching else partial(_warm_up, name, platform.settings)
    return Wiring(routes={HANDLER: route}, warm_up=warm_up)
