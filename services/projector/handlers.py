"""The projector's handler: every event of every job goes into `jobs/{job_id}`; nothing is published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from speakerline import logs
from speakerline.events import Event
from speakerline.runtime import Context

from .store import JobStore


@dataclass(frozen=True)
class ProjectorDeps:
    store: JobStore


def handle(event: Event[Any], context: Context, deps: ProjectorDeps) -> list[Event[Any]]:
    """Project `event` (any speakerline event, an `events.AnyEvent`). A redelivery (same event id) is acknowledged
    without changing anything. Returns no events: the projector is a pure consumer."""
    applied = deps.store.apply(event)
    log = logs.get_logger()
    if applied:
        log.info("event projected")
    else:
        # Expected under at-least-once delivery; logged so a replay storm is visible.
        log.info("duplicate event; already projected", duplicate=True)
    return []
