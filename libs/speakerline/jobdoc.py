"""Reading a job document (`jobs/{job_id}`, written by the projector only; its shape is described in
`projector.projection`): the one reader of its fields for the API's views and the CLI. Pure.

The runtime library imports no service, so this relies on the field names, which are the projector's contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from speakerline.jobpaths import RESULT_FORMATS
from speakerline.jobs import JobStatus

#: The stage timestamps (`stages.<key>`) in pipeline order, with their labels for people.
STAGES: Final[tuple[tuple[str, str], ...]] = (
    ("received_at", "received"),
    ("ingested_at", "ingested"),
    ("diarization_started_at", "diarization started"),
    ("diarized_at", "diarized"),
    ("completed_at", "completed"),
    ("rejected_at", "rejected"),
    ("failed_at", "failed"),
    ("deleted_at", "deleted"),
)

#: The `result` field holding the URI of each format post-processing writes.
RESULT_URI_KEYS: Final[Mapping[str, str]] = dict(
    zip(RESULT_FORMATS, ("output_uri", "rttm_uri", "vtt_uri"), strict=True)
)


def is_terminal(status: str) -> bool:
    """Whether a job in `status` is over (nothing moves it on but a replay)."""
    return status in {s.value for s in JobStatus if s.terminal}


def request_of(doc: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """What the producer asked for (empty before any event)."""
    request: Mapping[str, Any] = (doc or {}).get("request") or {}
    return request


def input_of(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """The producer's original file: `uri`, `filename`, `size_bytes`, ... (empty when unknown)."""
    source: dict[str, Any] = request_of(doc).get("input") or {}
    return source


def result_of(doc: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The completed job's result section, or None."""
    result = (doc or {}).get("result")
    return result if isinstance(result, Mapping) else None


def result_uri(doc: Mapping[str, Any] | None, fmt: str) -> str | None:
    """The storage URI of the result in `fmt` (one of `RESULT_FORMATS`), or None."""
    result = result_of(doc)
    uri = result.get(RESULT_URI_KEYS[fmt]) if result is not None else None
    return str(uri) if uri else None


def result_formats(doc: Mapping[str, Any] | None) -> list[str]:
    """The formats the job's result is available in."""
    return [fmt for fmt in RESULT_FORMATS if result_uri(doc, fmt)]


def stages_reached(doc: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(key, label, time) of every stage the job has a timestamp for, in pipeline order."""
    stages = doc.get("stages") or {}
    return [(key, label, stages[key]) for key, label in STAGES if stages.get(key) is not None]


def version(doc: Mapping[str, Any] | None) -> int:
    """How many events the document has absorbed (0: no document yet)."""
    return int((doc or {}).get("event_count") or 0)


def jsonable(value: Any) -> Any:
    """A document (or part of one) as JSON values: Firestore's datetimes become ISO 8601 strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
