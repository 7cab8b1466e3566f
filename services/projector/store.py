"""Where projected jobs live: the `JobStore` port and its Firestore adapter (the in-memory one for unit tests is
`tests.fakes.InMemoryJobStore`).

Layout (shared with the CLI's read side in `speakerline_tools.jobstore`):

    jobs/{job_id}                      the projected job document (see projection.py)
    jobs/{job_id}/events/{event_id}    every event applied, {type, time, source, id, data}

The event documents double as the dedup ledger: an event is applied iff its document does not exist yet, and it is
created in the same atomic write as the job document's new version, so a redelivered message changes nothing.

Why preconditions and not a transaction: a Firestore transaction locks the documents it read until it commits or
times out, so a projector killed inside one (SIGKILL, OOM, a preempted VM) blocks every event of that job for up
to the transaction's idle timeout (60 s in the cloud, about the same on the emulator). Here the reads take no
locks; the write commits only if the job document is still the version that was read (`last_update_time`) and
the event document still does not exist, and otherwise reads again. A writer that dies leaves nothing behind.
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import google.api_core.exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from speakerline import failpoints
from speakerline.events import Event
from speakerline.jobs import EVENTS_SUBCOLLECTION, JOBS_COLLECTION

from .projection import event_time, job_id_of, project


class JobStore(Protocol):
    def apply(self, event: Event[Any]) -> bool:
        """Project `event` into its job; False when that event id was already applied (nothing changed)."""
        ...


def event_record(event: Event[Any]) -> dict[str, Any]:
    """The `jobs/{job_id}/events/{event_id}` document: enough to audit or replay the job (its data is the
    event's JSON, as it travelled)."""
    return {
        "id": event.id,
        "type": event.TYPE,
        "time": event_time(event),
        "source": event.source,
        "data": event.payload(),
    }


class StripedLocks:
    """A fixed set of locks, picked by a stable hash of the key: bounded memory however many keys pass through.

    Two keys sharing a stripe are merely serialized with each other, which costs nothing but a little parallelism.
    """

    def __init__(self, stripes: int = 64) -> None:
        self._locks = tuple(threading.Lock() for _ in range(stripes))

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._locks[zlib.crc32(key.encode()) % len(self._locks)]:
            yield


class ProjectionConflict(Exception):
    """A job document kept changing under this writer; the delivery is retried by Pub/Sub."""


class FirestoreJobStore:
    """`JobStore` on Firestore. Thread-safe; one instance per process."""

    #: writes lost to another writer before the event is handed back to Pub/Sub for a later try
    MAX_CONFLICTS = 20

    def __init__(self, client: firestore.Client, stripes: int = 64) -> None:
        self._client = client
        # Every event of a job reads and writes the same jobs/{job_id} document, so two handler threads projecting
        # events of one job at once would make one write lose and read again. Serializing applies per job inside
        # the process removes those conflicts; the preconditions keep several projector instances correct.
        self._locks = StripedLocks(stripes)

    def apply(self, event: Event[Any]) -> bool:
        job_id = job_id_of(event)
        job_ref = self._client.collection(JOBS_COLLECTION).document(job_id)
        event_ref = job_ref.collection(EVENTS_SUBCOLLECTION).document(event.id)
        with self._locks.hold(job_id):
            for conflict in range(self.MAX_CONFLICTS):
                applied = self._try_apply(job_ref, event_ref, event)
                if applied is not None:
                    return applied
                time.sleep(random.uniform(0, min(0.05 * 2**conflict, 1.0)))  # another instance wrote the job
        raise ProjectionConflict(f"jobs/{job_id} changed under {self.MAX_CONFLICTS} writes in a row")

    def _try_apply(
        self, job_ref: firestore.DocumentReference, event_ref: firestore.DocumentReference, event: Event[Any]
    ) -> bool | None:
        """True: applied; False: that event was applied before; None: lost to a concurrent writer, read again."""
        snapshots = {snap.reference.path: snap for snap in self._client.get_all([job_ref, event_ref])}
        failpoints.reached("projector.apply", job_ref.id)
        if snapshots[event_ref.path].exists:
            return False
        job_snap = snapshots[job_ref.path]
        batch = self._client.batch()
        batch.create(event_ref, event_record(event))
        if job_snap.exists:
            before = job_snap.to_dict() or {}
            batch.update(
                job_ref,
                replacing(before, project(before, event)),
                option=self._client.write_option(last_update_time=job_snap.update_time),
            )
        else:
            batch.create(job_ref, project(None, event))
        try:
            batch.commit()
        except (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.Aborted):
            return None
        return True


def replacing(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The field updates that turn document `before` into `after` exactly (`project` never changes its input): every
    top-level field of `after` is set whole (a map value replaces the map), every field it dropped is deleted.
    `update` is the only write that takes a `last_update_time` precondition, and it reads keys as field paths,
    hence the quoting."""
    updates: dict[str, Any] = {FieldPath(key).to_api_repr(): value for key, value in after.items()}
    updates.update({FieldPath(key).to_api_repr(): firestore.DELETE_FIELD for key in before.keys() - after.keys()})
    return updates
