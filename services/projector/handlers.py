"""The projector's handler: every event of every job goes into `jobs/{job_id}`; nothing is published."""

from __future__ import annotations

from dataclasses import dataclass

from speakerline import logs
from speakerline.events import CloudEvent

from .store import JobStore


@dataclass(frozen=True)
class ProjectorDeps:
    store: JobStore


def handle(event: CloudEvent, deps: ProjectorDeps) -> list[CloudEvent]:
    """Project `event`. A redelivery (same event id) is acknowledged without changing anything."""
    applied = deps.store.apply(event)
    log = logs.get_logger()
    if applied:
        log.info("event projected")
    else:
        # Expected under at-least-once delivery; logged so a replay storm is visible.
        log.info("duplicate event; already projected", duplicate=True)
    return []
