"""Wiring of the projector, the only writer of `jobs/` (see speakerline.jobs): one handler, `on_job_event`, fed by every
topic (see the `projector-*` subscriptions of infra/topology.yaml)."""

from __future__ import annotations

from functools import partial

from speakerline import events, runtime
from speakerline.bootstrap import Platform, Wiring

from . import handlers
from .store import FirestoreJobStore

#: events in flight per subscription. A handler mostly waits for its event's group commit (see FirestoreJobStore), and
#: the more events wait together the fewer round trips each costs; the diarization subscription alone carries most
#: events (every progress report). At 8 a commit carried about 2 events, at 64 about 11; with the group commit,
#: 128 drained ~20 % faster than 64 (python -m speakerline_tools.bench.projector_bench).
CONCURRENCY = 128


def build_deps(platform: Platform) -> handlers.ProjectorDeps:
    """The handler's store: the platform's Firestore client (a double in tests)."""
    return handlers.ProjectorDeps(store=FirestoreJobStore(platform.firestore))


def wire(platform: Platform) -> Wiring:
    deps = build_deps(platform)
    # Every speakerline event type is projected; the runtime already refused anything outside the catalog.
    route = runtime.Route(
        partial(handlers.on_job_event, deps=deps), accepts=tuple(events.EVENT_CLASSES.values()), concurrency=CONCURRENCY
    )
    return Wiring(routes={"on_job_event": route})
