"""The projector's handler: every event of every job goes into `jobs/{job_id}`; nothing is published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from speakerline import logs, telemetry
from speakerline.events import Event, JobCompleted, JobFailed, JobRejected
from speakerline.jobs import JobStatus
from speakerline.runtime import Context

from .store import JobStore


@dataclass(frozen=True)
class ProjectorDeps:
    store: JobStore


def on_job_event(event: Event[Any], context: Context, deps: ProjectorDeps) -> list[Event[Any]]:
    """Project `event` (any speakerline event, an `events.AnyEvent`). A redelivery (same event id) is acknowledged
    without changing anything. Returns no events: the projector is a pure consumer."""
    applied = deps.store.apply(event)
    log = logs.get_logger()
    if applied:
        log.info("event projected")
        _count_if_terminal(event)
    else:
        # Expected under at-least-once delivery; logged so a replay storm is visible.
        log.info("duplicate event; already projected", duplicate=True)
    return []


_TERMINAL = {
    JobCompleted.TYPE: JobStatus.COMPLETED,
    JobFailed.TYPE: JobStatus.FAILED,
    JobRejected.TYPE: JobStatus.REJECTED,
}


def _count_if_terminal(event: Event[Any]) -> None:
    """Jobs by terminal status and reason code (metric `speakerline.jobs.finished`), once per terminal event."""
    status = _TERMINAL.get(event.TYPE)
    if status is not None:
        error = getattr(event.data, "error", None)
        telemetry.job_finished(status.value, str(getattr(error, "code", "") or ""))
