"""Wiring of the projector (the only Firestore writer) and its two entry points."""

from __future__ import annotations

from functools import partial

import functions_framework
from google.cloud import firestore

from speakerline import runtime, service
from speakerline.events import catalog
from projector import handlers
from projector.store import FirestoreJobStore

NAME = "projector"


@service.lazy
def build() -> runtime.ServiceDef:
    settings = service.Settings.from_env()
    deps = handlers.ProjectorDeps(store=FirestoreJobStore(firestore.Client(project=settings.project)))
    # Every speakerline event type is projected; the runtime already refused anything outside the catalog.
    route = runtime.Route(partial(handlers.handle, deps=deps), frozenset(catalog().by_type), concurrency=8)
    return runtime.ServiceDef(
        name=NAME, routes={"project": route}, publisher=service.publisher(settings), topology=settings.topology
    )


entrypoint = functions_framework.cloud_event(service.push_entrypoint(NAME, build))
http_entrypoint = functions_framework.http(service.push_http_entrypoint(NAME, build))


def main() -> None:
    service.run_worker(NAME, build)
