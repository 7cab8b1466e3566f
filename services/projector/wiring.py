"""Wiring of the projector, the only Firestore writer: one handler, `project`, fed by every topic (see the
`projector-*` subscriptions of infra/topology.yaml)."""

from __future__ import annotations

from functools import partial

from google.cloud import firestore

from speakerline import events, runtime
from speakerline.bootstrap import Platform, Wiring

from . import handlers
from .store import FirestoreJobStore


def wire(platform: Platform) -> Wiring:
    store = FirestoreJobStore(firestore.Client(project=platform.settings.project))
    deps = handlers.ProjectorDeps(store=store)
    # Every speakerline event type is projected; the runtime already refused anything outside the catalog.
    route = runtime.Route(
        partial(handlers.handle, deps=deps), accepts=tuple(events.EVENT_CLASSES.values()), concurrency=8
    )
    return Wiring(routes={"project": route})
