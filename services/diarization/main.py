"""Wiring of the diarization worker (done once per process) and its entry points.

- `python -m diarization` — streaming-pull worker, one job at a time (GPU hosts without ingress);
- `python -m diarization run-one --event-json FILE` — process one `audio.ingested` event and publish
  the results (what a Vertex AI custom job runs);
- `python -m diarization eval DIR [--engine E] [--num-speakers-from-reference] [--json] [--max-der X]` —
  DER of an engine on audio files with reference RTTMs (what `speakerline eval` runs; see `evaluation.py`);
- `entrypoint` — functions-framework CloudEvent function (push delivery; CPU only, for small deployments).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from functools import cache, partial
from pathlib import Path

import functions_framework
import google.cloud.storage as gcs

from speakerline import logs, runtime, service
from speakerline.events import CloudEvent, from_pubsub
from speakerline.storage import GcsBlobStore
from speakerline_tools import evaluation, handlers
from diarization.engines.base import DiarizationEngine
from diarization.engines.select import EngineConfig, load_engine
from diarization.progress import DEFAULT_INTERVAL_S

NAME = "diarization"
# The client extends a job's lease while it runs, for up to this long: a 24-hour recording (ingest's limit)
# takes about 5 h on one CPU thread (RTF ~0.2, `make bench-long`) and well under 1 h on a GPU; the rest is
# margin for a shared or slow machine. Past this, Pub/Sub redelivers the job to another worker.
MAX_LEASE_S = 12 * 3600


@cache
def _engine() -> DiarizationEngine:
    return load_engine(EngineConfig.from_env())


def _engine_info() -> handlers.EngineInfo:
    engine = _engine()
    return handlers.EngineInfo(
        engine.name, str(getattr(engine, "model", engine.name)), str(getattr(engine, "device", "cpu"))
    )


@service.lazy
def build() -> runtime.ServiceDef:
    settings = service.Settings.from_env()
    publisher = service.publisher(settings)
    dispatch = None
    if EngineConfig.from_env().engine == "vertex":
        from diarization.engines.vertex import VertexAIDispatcher

        dispatcher = VertexAIDispatcher.from_env()

        def dispatch(event: CloudEvent) -> handlers.EngineInfo:
            dispatcher.dispatch(event)
            return handlers.EngineInfo("vertex", dispatcher.model, dispatcher.accelerator)

    deps = handlers.DiarizationDeps(
        blobs=GcsBlobStore(gcs.Client(project=settings.project)),
        work_bucket=settings.bucket("work"),
        source=settings.source(NAME),
        worker=os.environ.get("SPEAKERLINE_WORKER_NAME") or socket.gethostname(),
        publish=publisher.publish,
        engine=_engine,
        engine_info=_engine_info,
        dispatch=dispatch,
        # least time between two progress events of a job (seconds)
        progress_interval_s=float(os.environ.get("SPEAKERLINE_PROGRESS_INTERVAL_S", DEFAULT_INTERVAL_S)),
    )
    route = runtime.Route(
        partial(handlers.on_audio_ingested, deps=deps),
        frozenset({handlers.INGESTED}),
        on_exhausted=partial(handlers.on_exhausted, deps=deps),
        concurrency=1,  # one job at a time per worker: the engine uses the whole GPU (or all CPU cores)
        max_lease_s=MAX_LEASE_S,
    )
    return runtime.ServiceDef(
        name=NAME, routes={"audio_ingested": route}, publisher=publisher, topology=settings.topology
    )


entrypoint = functions_framework.cloud_event(service.push_entrypoint(NAME, build))
http_entrypoint = functions_framework.http(service.push_http_entrypoint(NAME, build))


def _warm_up() -> None:
    """Load the model before taking work, so the first job is not slow and a broken setup shows at start."""
    log = logs.get_logger()
    try:
        info = _engine_info()
        log.info("engine ready", engine=info.name, model=info.model, device=info.device)
    except Exception as exc:  # the handler reports engine_unavailable per job; the worker must not crash-loop
        log.error("engine could not be loaded; jobs will fail with engine_unavailable", error=str(exc))


def run_one(event_json: Path) -> int:
    """Process one audio.ingested event given as structured-mode JSON (a Vertex AI custom job's work)."""
    logs.configure(NAME)
    attributes = {"content-type": "application/cloudevents+json"}
    event = from_pubsub(event_json.read_bytes(), attributes)  # validated before any work is done
    service_def = build()
    sub = service_def.topology.subscriptions_of(NAME)[0]
    delivery = runtime.Delivery(event_json.read_bytes(), attributes, event["id"], 1)
    outcome = runtime.process(service_def, sub, delivery)
    return 0 if outcome is runtime.Outcome.ACK else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m diarization")
    sub = parser.add_subparsers(dest="cmd")
    one = sub.add_parser("run-one", help="process one audio.ingested event (Vertex AI custom job)")
    one.add_argument("--event-json", type=Path, required=True)
    ev = sub.add_parser(
        "eval",
        help=evaluation.DESCRIPTION,
        description=evaluation.DESCRIPTION,
        prog=os.environ.get("SPEAKERLINE_EVAL_PROG"),  # `speakerline eval` names itself in the usage line
    )
    evaluation.add_arguments(ev)
    args = parser.parse_args(argv)
    if args.cmd == "run-one":
        sys.exit(run_one(args.event_json))
    if args.cmd == "eval":
        sys.exit(evaluation.run(args))
    logs.configure(NAME)
    _warm_up()
    service.run_worker(NAME, build)
