"""Diarization handler: normalized audio → raw speaker turns in the work bucket → `diarization.completed`.

`diarization.started` is published as soon as a worker takes the job (before the long part), so the job's
state shows DIARIZING while the engine runs, and `diarization.progress` every few seconds while it runs
(fraction done, audio seconds processed, time left; see `progress.py`); the streaming-pull client keeps the
message's lease alive meanwhile. Engine errors raise: Pub/Sub redelivers with backoff, and after the last attempt
`job.failed` (retriable) is published and the message goes to the dead-letter topic for ops to replay. An engine that
cannot be loaded at all fails the job at once (retrying the same worker would not help).

The turns JSON in the work bucket is the engine's output as it came: ``segments`` (overlap-aware) and, when the
engine produced one, ``exclusive_segments`` (one speaker at a time). The key is left out, and the event has no
``num_exclusive_turns``, when the engine gives none: post-processing then derives it, so that "no exclusive
timeline" is never confused with "no speech".
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speakerline import runtime, storage
from speakerline.events import CloudEvent, caused_event, data_of
from speakerline.timeline import Turn, to_rttm, turns_to_json
from diarization.engines.base import (
    DiarizationEngine,
    DiarizationOptions,
    EngineUnavailable,
    SpeakerTurn,
)
from diarization.progress import DEFAULT_INTERVAL_S, ProgressReport, ProgressReporter

INGESTED = "io.speakerline.audio.ingested.v1"
STARTED = "io.speakerline.diarization.started.v1"
PROGRESS = "io.speakerline.diarization.progress.v1"
COMPLETED = "io.speakerline.diarization.completed.v1"
JOB_FAILED = "io.speakerline.job.failed.v1"


@dataclass(frozen=True)
class EngineInfo:
    name: str
    model: str
    device: str


@dataclass(frozen=True)
class DiarizationDeps:
    blobs: storage.BlobStore
    work_bucket: str
    source: str
    worker: str
    publish: Callable[[Sequence[CloudEvent]], Any]
    engine: Callable[[], DiarizationEngine]  # loads once, lazily (a model load takes seconds)
    engine_info: Callable[[], EngineInfo]
    # When set, the job is handed to a Vertex AI custom job running this same handler on a GPU, which
    # publishes the completion itself; this worker only records that it started.
    dispatch: Callable[[CloudEvent], EngineInfo] | None = None
    scratch_dir: Path | None = None
    progress_interval_s: float = DEFAULT_INTERVAL_S  # least time between two progress events of a job


def _event(
    event_type: str, data: Mapping[str, Any], cause: CloudEvent, deps: DiarizationDeps, discriminator: str = ""
) -> CloudEvent:
    return caused_event(cause, event_type, data, source=deps.source, discriminator=discriminator)


def _failed(cause: CloudEvent, deps: DiarizationDeps, code: str, message: str, retriable: bool) -> CloudEvent:
    data = data_of(cause)
    failed = {
        "job_id": data["job_id"],
        "request": data["request"],
        "error": {"stage": "diarization", "code": code, "message": message[:2000], "retriable": retriable},
        "attempt": runtime.delivery_attempt() or 1,
    }
    return _event(JOB_FAILED, failed, cause, deps)


def options_of(request: Mapping[str, Any]) -> DiarizationOptions:
    opts = request.get("options") or {}
    return DiarizationOptions(opts.get("num_speakers"), opts.get("min_speakers"), opts.get("max_speakers"))


def _from_worker(
    event_type: str, cause: CloudEvent, deps: DiarizationDeps, fields: Mapping[str, Any], tag: str = ""
) -> CloudEvent:
    """An event about this worker's attempt at the job; its id is fixed by (cause, attempt, worker, tag)."""
    data = data_of(cause)
    attempt = runtime.delivery_attempt() or 1
    payload = {"job_id": data["job_id"], "request": data["request"], **fields}
    payload.update(attempt=attempt, worker=deps.worker)
    discriminator = f"{attempt}:{deps.worker}" + (f":{tag}" if tag else "")
    return _event(event_type, payload, cause, deps, discriminator)


def _started(event: CloudEvent, deps: DiarizationDeps, info: EngineInfo) -> CloudEvent:
    engine = {"name": info.name, "model": info.model, "device": info.device}
    return _from_worker(STARTED, event, deps, {"engine": engine})


def _progress(event: CloudEvent, deps: DiarizationDeps, report: ProgressReport) -> CloudEvent:
    return _from_worker(PROGRESS, event, deps, {"progress": report.to_json()}, tag=str(report.sequence))


def _turns(engine_turns: Sequence[SpeakerTurn]) -> list[Turn]:
    return [Turn(t.start, t.end, t.speaker) for t in engine_turns]


def on_audio_ingested(event: CloudEvent, deps: DiarizationDeps) -> list[CloudEvent]:
    data = data_of(event)
    job_id = data["job_id"]
    if deps.dispatch is not None:
        return [_started(event, deps, deps.dispatch(event))]
    try:
        engine = deps.engine()
        info = deps.engine_info()
    except EngineUnavailable as exc:
        return [_failed(event, deps, "engine_unavailable", f"No diarization engine could be loaded: {exc}", False)]
    deps.publish([_started(event, deps, info)])

    with tempfile.TemporaryDirectory(dir=deps.scratch_dir, prefix="diarization-") as tmp:
        wav = Path(tmp) / "audio.wav"
        deps.blobs.download(data["audio"]["uri"], wav)
        reporter = ProgressReporter(
            lambda report: deps.publish([_progress(event, deps, report)]),
            audio_s=float(data["audio"].get("duration_s") or 0.0),
            interval_s=deps.progress_interval_s,
        )
        result = engine.diarize(wav, options_of(data["request"]), progress=reporter)
    turns = _turns(result.turns)
    raw: dict[str, Any] = {"segments": turns_to_json(turns)}
    exclusive = _turns(result.exclusive_turns)
    if exclusive:
        raw["exclusive_segments"] = turns_to_json(exclusive)
    base = f"jobs/{job_id}"
    turns_uri = storage.uri(deps.work_bucket, f"{base}/turns.json")
    rttm_uri = storage.uri(deps.work_bucket, f"{base}/raw.rttm")
    deps.blobs.upload_bytes(json.dumps(raw).encode(), turns_uri, "application/json")
    deps.blobs.upload_bytes(to_rttm(turns, job_id).encode(), rttm_uri, "text/plain")
    timings = {k: round(float(v), 3) for k, v in result.timings.items() if k in ("load_s", "inference_s", "rtf")}
    timings.setdefault("inference_s", 0.0)
    timings.setdefault("rtf", 0.0)
    completed: dict[str, Any] = {
        "job_id": job_id,
        "request": data["request"],
        "audio": data["audio"],
        "engine": {"name": result.engine, "model": result.model, "device": result.device},
        "result": {
            "turns_uri": turns_uri,
            "rttm_uri": rttm_uri,
            "num_speakers": len(result.speakers),
            "num_turns": len(turns),
        },
        "timings": timings,
    }
    if exclusive:
        completed["result"]["num_exclusive_turns"] = len(exclusive)
    return [_event(COMPLETED, completed, event, deps)]


def on_exhausted(event: CloudEvent, error: BaseException, deps: DiarizationDeps) -> list[CloudEvent]:
    return [_failed(event, deps, "engine_error", f"Diarization kept failing: {error}", True)]
