"""Job documents (the projector's shape, see services/projector/projection.py) as the API shows them. Pure.

Internal details stay inside: storage URIs of the results (the API hands out signed URLs instead) and the
projector's bookkeeping (`last_event`). `event_count` is not shown either, but it numbers the document's
versions: every applied event adds one, so it is the id of the event stream's events.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from speakerline.jobs import JobStatus

PENDING: Final = "PENDING"
FORMATS: Final = ("json", "rttm", "vtt")
_RESULT_URI_KEY: Final = {"json": "output_uri", "rttm": "rttm_uri", "vtt": "vtt_uri"}
_SHOWN: Final = ("stages", "progress", "engine", "audio", "error", "attempts")
_REQUEST_SHOWN: Final = ("options", "webhook_url", "correlation_id", "producer", "submitted_by")


def is_terminal(status: str) -> bool:
    return status in {s.value for s in JobStatus if s.terminal}


def owner(doc: Mapping[str, Any] | None, claim: Mapping[str, Any] | None) -> str | None:
    """The producer a job belongs to: the one its events carry, else the API's claim (before any event)."""
    producer = ((doc or {}).get("request") or {}).get("producer")
    if producer:
        return str(producer)
    return str(claim["producer"]) if claim and claim.get("producer") else None


def version(doc: Mapping[str, Any] | None) -> int:
    """How many events the document has absorbed (0: no document yet)."""
    return int((doc or {}).get("event_count") or 0)


def job_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    request: Mapping[str, Any] = doc.get("request") or {}
    source: Mapping[str, Any] = request.get("input") or {}
    view: dict[str, Any] = {
        "job_id": doc["job_id"],
        "status": doc.get("status") or JobStatus.RECEIVED.value,
        "file_name": source.get("filename"),
        "created_at": _time(doc.get("created_at")),
        "updated_at": _time(doc.get("updated_at")),
        "request": {
            **{k: request[k] for k in _REQUEST_SHOWN if request.get(k) is not None},
            "input": {k: v for k, v in source.items() if k in ("filename", "size_bytes", "content_type")},
        },
        "notifications": [
            {k: _time(v) for k, v in n.items() if k in ("channel", "status", "code", "at", "event_id")}
            for n in doc.get("notifications") or []
        ],
    }
    for key in _SHOWN:
        value = doc.get(key)
        view[key] = _times(_without_uris(value)) if value is not None else None
    result = doc.get("result")
    view["result"] = (
        {"summary": result.get("summary"), "formats": [f for f in FORMATS if result.get(_RESULT_URI_KEY[f])]}
        if isinstance(result, Mapping)
        else None
    )
    return view


def pending_view(job_id: str, claim: Mapping[str, Any]) -> dict[str, Any]:
    """A job the API announced that no event has reached yet (e.g. the upload has not arrived)."""
    return {
        "job_id": job_id,
        "status": PENDING,
        "file_name": claim.get("file_name"),
        "created_at": _time(claim.get("created_at")),
        "updated_at": _time(claim.get("created_at")),
        "request": {"producer": claim.get("producer")},
    }


def result_uri(doc: Mapping[str, Any], fmt: str) -> str | None:
    result = doc.get("result")
    if not isinstance(result, Mapping):
        return None
    uri = result.get(_RESULT_URI_KEY[fmt])
    return str(uri) if uri else None


def _without_uris(value: Any) -> Any:
    """A section without storage locations (`uri`, `*_uri`): callers get files through signed URLs."""
    if isinstance(value, Mapping):
        return {k: _without_uris(v) for k, v in value.items() if k != "uri" and not k.endswith("_uri")}
    return value


def _time(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _times(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_times(v) for v in value]
    return _time(value)
