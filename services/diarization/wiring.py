"""Wiring of the diarization service: its one handler, its deps, the engine it loads (once per process).

Run it as `python -m speakerline.worker diarization` (streaming pull, one job at a time: GPU hosts without
ingress), behind a push subscription (`speakerline.push:http_entrypoint`; CPU only, for small deployments), or, in
a Vertex AI custom job, as `python -m speakerline.worker diarization --envelope FILE` (one job, see
`engines/vertex.py`). With `SPEAKERLINE_ENGINE=vertex` (or `SPEAKERLINE_VERTEX_DISPATCH`) the worker diarizes
nothing itself: it hands every job to such a custom job.
"""

from __future__ import annotations

from functools import cache, partial

from diarization import handlers
from diarization.engines.base import DiarizationEngine
from diarization.engines.select import EngineConfig, load_engine
from diarization.progress import DEFAULT_INTERVAL_S
from speakerline import logs
from speakerline.bootstrap import Platform, Wiring
from speakerline.events import AudioIngested, DiarizationProgress
from speakerline.runtime import Route
from speakerline.settings import Settings

NAME = "diarization"
HANDLER = "audio_ingested"
# The client extends a job's lease while it runs, for up to this long: a 24-hour recording (ingest's limit)
# takes about 5 h on one CPU thread (RTF ~0.2, `make bench-long`) and well under 1 h on a GPU; the rest is
# margin for a shared or slow machine. Past this, Pub/Sub redelivers the job to another worker.
MAX_LEASE_S = 12 * 3600


@cache
def _engine(config: EngineConfig) -> DiarizationEngine:
    """The engine, loaded on first use and kept for the life of the process (a model load takes seconds)."""
    return load_engine(config)


def _engine_info(config: EngineConfig) -> handlers.EngineInfo:
    engine = _engine(config)
    return handlers.EngineInfo(
        engine.name, str(getattr(engine, "model", engine.name)), str(getattr(engine, "device", "cpu"))
    )


def _warm_up(config: EngineConfig) -> None:
    """Load the model before taking work, so the first job is not slow and a broken setup shows at start."""
    log = logs.get_logger()
    try:
        info = _engine_info(config)
        log.info("engine ready", engine=info.name, model=info.model, device=info.device)
    except Exception as exc:  # the handler reports engine_unavailable per job; the worker must not crash-loop
        log.error("engine could not be loaded; jobs will fail with engine_unavailable", error=str(exc))


def _vertex_dispatch(settings: Settings) -> handlers.Dispatch:
    from diarization.engines.vertex import VertexAIDispatcher, VertexConfig

    # the custom job gets the event as a push envelope of this service's subscription, as if pushed to it
    (subscription,) = [s.name for s in settings.topology.subscriptions_of(NAME) if s.handler == HANDLER]
    dispatcher = VertexAIDispatcher(VertexConfig.from_settings(settings), subscription=subscription)

    def dispatch(event: AudioIngested) -> handlers.EngineInfo:
        dispatcher.dispatch(event)
        return handlers.EngineInfo("vertex", dispatcher.model, dispatcher.accelerator)

    return dispatch


def wire(platform: Platform) -> Wiring:
    settings = platform.settings
    config = EngineConfig.from_settings(settings)
    dispatching = config.engine == "vertex"
    interval = settings.progress_interval_s
    deps = handlers.DiarizationDeps(
        blobs=platform.blobs,
        work_bucket=platform.bucket("work"),
        source=platform.source,
        worker=platform.worker,
        engine=partial(_engine, config),
        engine_info=partial(_engine_info, config),
        dispatch=_vertex_dispatch(settings) if dispatching else None,
        # least time between two progress events of a job (seconds)
        progress_interval_s=DEFAULT_INTERVAL_S if interval is None else interval,
    )
    route = Route(
        partial(handlers.on_audio_ingested, deps=deps),
        accepts=(AudioIngested,),
        on_exhausted=partial(handlers.on_exhausted, deps=deps),
        concurrency=1,  # one job at a time per worker: the engine uses the whole GPU (or all CPU cores)
        max_lease_s=MAX_LEASE_S,
        best_effort=(DiarizationProgress,),  # losing a progress report must not redo the job
    )
    # a dispatching worker loads no engine: there is nothing to warm up
    warm_up = None if dispatching else partial(_warm_up, config)
    return Wiring(routes={HANDLER: route}, warm_up=warm_up)
