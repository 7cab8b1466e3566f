"""structlog configured for Cloud Logging: one JSON object per line on stderr.

Cloud Logging reads `severity`, `message` and `time`, and joins a line to a trace through
`logging.googleapis.com/trace` (`projects/<project>/traces/<trace id>`) and `logging.googleapis.com/spanId`.
`bind_event` puts those and the job id and event id into the context of everything logged while an event is
handled, so every line of a job can be found with one filter (`jsonPayload.job_id="..."`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

from speakerline.events import Event
from speakerline.events.wire import current_traceparent, trace_ids_of

_SEVERITY = {
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARNING",
    "warn": "WARNING",
    "error": "ERROR",
    "exception": "ERROR",
    "critical": "CRITICAL",
}


def _cloud_logging_severity(_: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    level = event_dict.pop("level", method)
    event_dict["severity"] = _SEVERITY.get(str(level).lower(), "DEFAULT")
    return event_dict


#: The Google Cloud project of trace ids in log lines (`configure` sets it from the settings).
_trace_project = ""


def configure(service: str, level: str | None = None, *, project: str = "") -> None:
    """Configure structlog (and stdlib logging of libraries) once per process: `level` None means INFO, `project`
    is the Google Cloud project traces are recorded in (settings.project; empty: trace ids without one)."""
    global _trace_project
    _trace_project = project
    level_name = (level or "INFO").upper()
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level_name, logging.INFO), format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _cloud_logging_severity,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level_name, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(**initial: Any) -> Any:
    return structlog.get_logger(**initial)


def trace_fields(traceparent: str | None, project: str | None) -> dict[str, str]:
    """Cloud Logging's trace and span fields of a W3C traceparent (empty when it has none)."""
    ids = trace_ids_of(traceparent)
    if not ids:
        return {}
    trace_id, span_id = ids
    trace = f"projects/{project}/traces/{trace_id}" if project else trace_id
    return {"logging.googleapis.com/trace": trace, "logging.googleapis.com/spanId": span_id}


@contextmanager
def bind_event(event: Event[Any] | None, **extra: Any) -> Iterator[None]:
    """Bind job id, event id/type and trace of `event` (plus `extra`) to every log line inside the block."""
    fields: dict[str, Any] = dict(extra)
    if event is not None:
        fields.update(event_id=event.id, event_type=event.TYPE)
        if event.job_id:
            fields["job_id"] = event.job_id
        # the span handling the event where one is recorded (its parent is the event's own traceparent)
        traceparent = current_traceparent() or event.traceparent
        fields.update(trace_fields(traceparent, _trace_project or None))
    with structlog.contextvars.bound_contextvars(**fields):
        yield
