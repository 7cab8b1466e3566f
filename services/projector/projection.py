"""The job read model: fold one event into the `jobs/{job_id}` document. Pure: no I/O, inputs never mutated.

Pub/Sub delivers at least once and in no particular order (ordering is never enabled, see infra/topology.yaml),
so the fold is built to give the same document whatever order a job's events arrive in:

- every stage timestamp is the earliest time seen for that stage ("the first event of that stage");
- the status is *derived* from the stages seen, never stored as a transition: the highest-ranked stage wins, so a
  late event cannot regress it and a terminal event cannot be overridden by a lower-ranked one;
- a data section (engine, audio, result, ...) comes from the highest-precedence stage that carries it and, within
  a stage, from its first event: the same argmin that gives the stage timestamp, hence order-independent;
- `request` only fills gaps, since every event of a job carries the same request;
- notifications are a set keyed by event id, kept sorted by time;
- `progress` is the furthest diarization progress report seen, by (attempt, fraction, sequence): a late or
  repeated report never moves it back, and a new attempt's reports replace the old attempt's.

The fold works on the event's JSON (`Event.payload()`), the same form the store records next to the document: it
is one generic fold over every event type, reading a handful of keys, not one function per typed class. Event
types are compared with the classes' `TYPE`, never spelled out.

Deduplication of whole events (so that `event_count` counts each event once) is the store's job: it records every
applied event id next to the document in the same atomic write.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from speakerline.events import (
    AudioIngested,
    AudioUploaded,
    DiarizationCompleted,
    DiarizationProgress,
    DiarizationStarted,
    Event,
    InvalidEvent,
    JobCompleted,
    JobDeleted,
    JobFailed,
    JobRejected,
    NotificationDelivered,
    NotificationFailed,
)
from speakerline.jobs import JobStatus

# Stage of the job each event type marks, and the field of `stages` holding its first time.
STAGE_OF_EVENT: Final[Mapping[str, str]] = {
    AudioUploaded.TYPE: "received_at",
    AudioIngested.TYPE: "ingested_at",
    DiarizationStarted.TYPE: "diarization_started_at",
    DiarizationCompleted.TYPE: "diarized_at",
    JobCompleted.TYPE: "completed_at",
    JobRejected.TYPE: "rejected_at",
    JobFailed.TYPE: "failed_at",
    JobDeleted.TYPE: "deleted_at",
}
STAGE_KEYS: Final[tuple[str, ...]] = tuple(STAGE_OF_EVENT.values())

STATUS_OF_STAGE: Final[Mapping[str, JobStatus]] = {
    "received_at": JobStatus.RECEIVED,
    "ingested_at": JobStatus.INGESTED,
    "diarization_started_at": JobStatus.DIARIZING,
    "diarized_at": JobStatus.DIARIZED,
    "completed_at": JobStatus.COMPLETED,
    "rejected_at": JobStatus.REJECTED,
    "failed_at": JobStatus.FAILED,
    "deleted_at": JobStatus.DELETED,
}

# COMPLETED outranks FAILED: an ops replay from the dead-letter subscription may succeed after a job failed, and
# that success is the truth; a late failure (a stale redelivery) never overrides a completion.
STATUS_RANK: Final[Mapping[JobStatus, int]] = {
    JobStatus.RECEIVED: 0,
    JobStatus.INGESTED: 1,
    JobStatus.DIARIZING: 2,
    JobStatus.DIARIZED: 3,
    JobStatus.FAILED: 4,
    JobStatus.REJECTED: 4,
    JobStatus.COMPLETED: 5,
    # A deletion is final: the audio and results are gone, whatever a late or replayed event says.
    JobStatus.DELETED: 6,
}
# Equal ranks need a fixed tie-break to stay order-independent: a rejection is a verdict on the input itself
# (submitting it again is rejected again), so it is the more useful status to show.
_TIE_BREAK: Final[Mapping[JobStatus, int]] = {JobStatus.REJECTED: 1}

# For each data section: the stages whose events carry it, lowest precedence first. A later stage knows more
# (diarization.completed names the engine that actually ran, where diarization.started names the one that began).
_SECTION_CARRIERS: Final[Mapping[str, tuple[str, ...]]] = {
    "source": ("ingested_at",),
    "audio": ("ingested_at", "diarized_at"),
    "engine": ("diarization_started_at", "diarized_at", "completed_at"),
    "timings": ("diarized_at",),
    "result": ("completed_at",),
    "error": ("failed_at", "rejected_at"),
}
_REQUEST_KEYS: Final[tuple[str, ...]] = (
    "input",
    "options",
    "webhook_url",
    "correlation_id",
    "submitted_by",
    "producer",
)
_RESULT_KEYS: Final[tuple[str, ...]] = ("output_uri", "rttm_uri", "vtt_uri", "summary")
_ERROR_KEYS: Final[tuple[str, ...]] = ("stage", "code", "message", "retriable")


def event_time(event: Event[Any]) -> datetime:
    """The event's `time` as an aware UTC datetime (a producer omitting the offset is taken to mean UTC)."""
    at = event.time
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def job_id_of(event: Event[Any]) -> str:
    job_id = event.job_id
    if not job_id:
        raise InvalidEvent("missing_job_id", f"event {event.id} ({event.TYPE}) names no job")
    return job_id


def empty_job(job_id: str, at: datetime) -> dict[str, Any]:
    """A job document before any event: the shape every projection starts from."""
    return {
        "job_id": job_id,
        "status": JobStatus.RECEIVED.value,
        "created_at": at,
        "updated_at": at,
        "request": {},
        "stages": dict.fromkeys(STAGE_KEYS),
        "audio": None,
        "source": None,
        "engine": None,
        "timings": None,
        "result": None,
        "error": None,
        "attempts": {"diarization": 0},
        "notifications": [],
        "progress": None,
        "last_event": None,
        "event_count": 0,
    }


def status_of(stages: Mapping[str, datetime | None]) -> JobStatus:
    """The status implied by the stages seen: highest rank wins (RECEIVED when none, e.g. only notifications)."""
    seen = [STATUS_OF_STAGE[key] for key, at in stages.items() if at is not None and key in STATUS_OF_STAGE]
    if not seen:
        return JobStatus.RECEIVED
    return max(seen, key=lambda s: (STATUS_RANK[s], _TIE_BREAK.get(s, 0)))


def project(job: Mapping[str, Any] | None, event: Event[Any]) -> dict[str, Any]:
    """The new `jobs/{job_id}` document after `event`; `job` is the current one (None for the first event)."""
    kind = event.TYPE
    data: Mapping[str, Any] = event.payload()
    at = event_time(event)
    job_id = job_id_of(event)

    doc = _normalized(copy.deepcopy(dict(job)), job_id, at) if job is not None else empty_job(job_id, at)
    stages_before = dict(doc["stages"])
    stage = STAGE_OF_EVENT.get(kind)

    doc["created_at"] = min(doc["created_at"], at)
    doc["updated_at"] = max(doc["updated_at"], at)
    _fill_request(doc["request"], data.get("request"))

    if stage is not None:
        first = stages_before.get(stage)
        if first is None or at < first:
            doc["stages"][stage] = at
        _merge_sections(doc, stages_before, stage, at, _sections_of(kind, data))

    attempt = _diarization_attempt(kind, data)
    if attempt is not None:
        doc["attempts"]["diarization"] = max(doc["attempts"].get("diarization", 0), attempt)

    if kind in (NotificationDelivered.TYPE, NotificationFailed.TYPE):
        doc["notifications"] = _add_notification(doc["notifications"], kind, data, event.id, at)

    if kind == DiarizationProgress.TYPE:
        doc["progress"] = _furthest_progress(doc.get("progress"), data, at)

    last = doc["last_event"]
    if last is None or (at, event.id) >= (last["time"], str(last["id"])):
        doc["last_event"] = {"id": event.id, "type": kind, "time": at}
    doc["event_count"] = int(doc["event_count"]) + 1
    doc["status"] = status_of(doc["stages"]).value
    if doc["stages"].get("deleted_at") is not None:
        # The result files were deleted with the job: never point at them, whichever event came last.
        doc["result"] = None
        doc["deleted_by"] = data.get("deleted_by") if kind == JobDeleted.TYPE else doc.get("deleted_by")
    return doc


def _normalized(doc: dict[str, Any], job_id: str, at: datetime) -> dict[str, Any]:
    """Fill keys missing from a stored document (written by an older projector) so the fold can rely on them."""
    base = empty_job(job_id, at)
    for key, value in base.items():
        if doc.get(key) is None:
            doc[key] = value
    for key in STAGE_KEYS:
        doc["stages"].setdefault(key, None)
    return doc


def _fill_request(request: dict[str, Any], carried: Any) -> None:
    if not isinstance(carried, Mapping):
        return
    for key in _REQUEST_KEYS:
        if request.get(key) is None and carried.get(key) is not None:
            request[key] = copy.deepcopy(carried[key])


def _sections_of(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The data sections an event contributes, already in the document's shape."""
    sections: dict[str, Any] = {}
    for key in ("audio", "source", "engine", "timings"):
        if isinstance(data.get(key), Mapping):
            sections[key] = copy.deepcopy(dict(data[key]))
    # diarization.completed has a `result` too, but it is the raw engine output (turns, raw RTTM): the job's
    # result is what postprocess published.
    if kind == JobCompleted.TYPE and isinstance(data.get("result"), Mapping):
        sections["result"] = {k: copy.deepcopy(data["result"][k]) for k in _RESULT_KEYS if k in data["result"]}
    if kind in (JobFailed.TYPE, JobRejected.TYPE) and isinstance(data.get("error"), Mapping):
        sections["error"] = {k: data["error"][k] for k in _ERROR_KEYS if k in data["error"]}
    return sections


def _merge_sections(
    doc: dict[str, Any],
    stages_before: Mapping[str, datetime | None],
    stage: str,
    at: datetime,
    sections: Mapping[str, Any],
) -> None:
    for key, value in sections.items():
        carriers = _SECTION_CARRIERS.get(key, ())
        if stage not in carriers:
            continue
        # A higher-precedence stage already seen has written this section (its events always carry it).
        outranked = any(stages_before.get(s) is not None for s in carriers[carriers.index(stage) + 1 :])
        first = stages_before.get(stage)
        # Within the stage the first event wins, like the stage timestamp; ties go to the later application.
        if not outranked and (first is None or at <= first or doc.get(key) is None):
            doc[key] = value


def _diarization_attempt(kind: str, data: Mapping[str, Any]) -> int | None:
    attempt = data.get("attempt")
    if not isinstance(attempt, int):
        return None
    if kind == DiarizationStarted.TYPE:
        return attempt
    # job.failed carries the delivery attempt of the stage that gave up; only diarization attempts count here.
    error = data.get("error")
    if kind == JobFailed.TYPE and isinstance(error, Mapping) and error.get("stage") == "diarization":
        return attempt
    return None


def _progress_key(progress: Mapping[str, Any]) -> tuple[int, float, int]:
    attempt, sequence = int(progress.get("attempt") or 0), int(progress.get("sequence") or 0)
    return (attempt, float(progress.get("fraction") or 0.0), sequence)


def _furthest_progress(current: Mapping[str, Any] | None, data: Mapping[str, Any], at: datetime) -> Any:
    report = data.get("progress")
    if not isinstance(report, Mapping):
        return current
    candidate = {
        "attempt": data.get("attempt"),
        "fraction": report.get("fraction"),
        "stage": report.get("stage"),
        "audio_s": report.get("audio_s"),
        "processed_audio_s": report.get("processed_audio_s"),
        "eta_s": report.get("eta_s"),
        "sequence": report.get("sequence"),
        "at": at,
    }
    if current is not None and _progress_key(current) >= _progress_key(candidate):
        return current
    return candidate


def _add_notification(
    notifications: list[dict[str, Any]], kind: str, data: Mapping[str, Any], event_id: str, at: datetime
) -> list[dict[str, Any]]:
    if any(n.get("event_id") == event_id for n in notifications):
        return notifications
    entry: dict[str, Any] = {
        "channel": data.get("channel"),
        "target": data.get("target"),
        "status": "delivered" if kind == NotificationDelivered.TYPE else "failed",
        "event_id": event_id,
        "at": at,
    }
    error = data.get("error")
    if isinstance(error, Mapping) and error.get("code"):
        entry["code"] = error["code"]
    # Sorted, not appended, so that the list is the same whatever order the reports arrived in.
    return sorted([*notifications, entry], key=lambda n: (n["at"], str(n["event_id"])))
