"""Job documents (the projector's shape, see services/projector/projection.py) as the API shows them. Pure.

Internal details stay inside: storage URIs of the results (the API hands out signed URLs instead) and the
projector's bookkeeping (`last_event`). `event_count` is not shown either, but it numbers the document's
versions: every applied event adds one, so it is the id of the event stream's events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from speakerline import jobdoc
from speakerline.jobdoc import is_terminal, jsonable, result_uri, version
from speakerline.jobs import JobStatus

# is_terminal, result_uri and version are the shared reader's (speakerline.jobdoc), shown here with the views.
__all__ = ["PENDING", "is_terminal", "job_view", "owner", "pending_view", "result_uri", "version"]

PENDING: Final = "PENDING"
_SHOWN: Final = ("stages", "progress", "engine", "audio", "error", "attempts")
_REQUEST_SHOWN: Final = ("options", "webhook_url", "correlation_id", "producer", "submitted_by")


def owner(doc: Mapping[str, Any] | None, claim: Mapping[str, Any] | None) -> str | None:
    """The producer a job belongs to: the one its events carry, else the API's claim (before any event)."""
    producer = jobdoc.request_of(doc).get("producer")
    if producer:
        return str(producer)
    return str(claim["producer"]) if claim and claim.get("producer") else None


def job_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    request = jobdoc.request_of(doc)
    source = jobdoc.input_of(doc)
    view: dict[str, Any] = {
        "job_id": doc["job_id"],
        "status": doc.get("status") or JobStatus.RECEIVED.value,
        "file_name": source.get("filename"),
        "created_at": jsonable(doc.get("created_at")),
        "updated_at": jsonable(doc.get("updated_at")),
        "request": {
            **{k: request[k] for k in _REQUEST_SHOWN if request.get(k) is not None},
            "input": {k: v for k, v in source.items() if k in ("filename", "size_bytes", "content_type")},
        },
        "notifications": [
            {k: jsonable(v) for k, v in n.items() if k in ("channel", "status", "code", "at", "event_id")}
            for n in doc.get("notifications") or []
        ],
    }
    for key in _SHOWN:
        value = doc.get(key)
        view[key] = jsonable(_without_uris(value)) if value is not None else None
    result = jobdoc.result_of(doc)
    view["result"] = (
        {"summary": result.get("summary"), "formats": jobdoc.result_formats(doc)} if result is not None else None
    )
    return view


def pending_view(job_id: str, claim: Mapping[str, Any]) -> dict[str, Any]:
    """A job the API announced that no event has reached yet (e.g. the upload has not arrived)."""
    return {
        "job_id": job_id,
        "status": PENDING,
        "file_name": claim.get("file_name"),
        "created_at": jsonable(claim.get("created_at")),
        "updated_at": jsonable(claim.get("created_at")),
        "request": {"producer": claim.get("producer")},
    }


def _without_uris(value: Any) -> Any:
    """A section without storage locations (`uri`, `*_uri`): callers get files through signed URLs."""
    if isinstance(value, Mapping):
        return {k: _without_uris(v) for k, v in value.items() if k != "uri" and not k.endswith("_uri")}
    return value
