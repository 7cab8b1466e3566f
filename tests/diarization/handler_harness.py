"""Driving the diarization handler in unit tests: an `audio.ingested` event, the handler's dependencies around an
engine double, and a run of the handler to its end."""

from __future__ import annotations

import dataclasses
from typing import Any

from diarization import handlers
from speakerline import events, runtime
from speakerline.storage import BlobStore
from tests.conftest import example_data
from tests.fakes import ScriptedEngine, handler_context


def ingested(data: dict[str, Any] | None = None, *, job_id: str | None = None) -> events.AudioIngested:
    """An `audio.ingested` event of `data` (default: the schema's example), for job `job_id` where given."""
    data = dict(data if data is not None else example_data("audio.ingested"))
    if job_id is not None:
        data["job_id"] = job_id
    return events.AudioIngested.new(events.models.AudioIngestedV1Data.model_validate(data), source="//test")


def diarization_deps(
    blobs: BlobStore, engine: ScriptedEngine | Exception | None, **overrides: Any
) -> handlers.DiarizationDeps:
    """The handler's dependencies around `engine`, which loading the engine returns (or raises, an exception);
    `overrides` replace fields (a dispatch, a progress interval)."""

    def load() -> Any:
        if isinstance(engine, Exception):
            raise engine
        return engine

    named = engine if isinstance(engine, ScriptedEngine) else ScriptedEngine()
    deps = handlers.DiarizationDeps(
        blobs=blobs,
        work_bucket="work",
        source="//speakerline/services/diarization",
        worker="w1",
        engine=load,
        engine_info=lambda: handlers.EngineInfo(named.name, named.model, named.device),
    )
    return dataclasses.replace(deps, **overrides)


def run_handler(
    event: events.AudioIngested, deps: handlers.DiarizationDeps, context: runtime.Context | None = None
) -> list[Any]:
    """Drive the handler's generator to its end, as the runtime does; every event is checked against its schema."""
    out = list(handlers.on_audio_ingested(event, context or handler_context(), deps))
    for event_out in out:
        events.to_pubsub(event_out)
    return out
