"""Where projected jobs live: the `JobStore` port and its Firestore adapter (the in-memory one for unit tests is
`tests.fakes.InMemoryJobStore`).

Layout (shared with the CLI's read side in `speakerline_tools.jobstore`):

    jobs/{job_id}                      the projected job document (see projection.py)
    jobs/{job_id}/events/{event_id}    every event applied, {type, time, source, id, data}

The event documents double as the dedup ledger: an event is applied iff its document does not exist yet, checked
and written in the same transaction as the job document, so a redelivered message changes nothing.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from google.cloud import firestore

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


class FirestoreJobStore:
    """`JobStore` on Firestore. Thread-safe; one instance per process."""

    def __init__(self, client: firestore.Client, stripes: int = 64) -> None:
        self._client = client
        # Every event of a job reads and writes the same jobs/{job_id} document, so two handler threads projecting
        # events of one job at once would make one transaction lose and retry. On the Firestore emulator (which
        # locks pessimistically) a lost conflict costs about 2 s before the retry, and in production it costs an
        # abort and a round trip. Serializing applies per job inside the process removes those conflicts; the
        # transaction still keeps several projector instances correct.
        self._locks = StripedLocks(stripes)

    def apply(self, event: Event[Any]) -> bool:
        job_id = job_id_of(event)
        job_ref = self._client.collection(JOBS_COLLECTION).document(job_id)
        event_ref = job_ref.collection(EVENTS_SUBCOLLECTION).document(event.id)
        with self._locks.hold(job_id):
            applied: bool = _apply_in_transaction(self._client.transaction(), job_ref, event_ref, event)
        return applied


@firestore.transactional
def _apply_in_transaction(
    transaction: firestore.Transaction,
    job_ref: firestore.DocumentReference,
    event_ref: firestore.DocumentReference,
    event: Event[Any],
) -> bool:
    # Called again from the top when the commit loses a conflict: everything below is derived from these reads.
    snapshots = {snap.reference.path: snap for snap in transaction.get_all([job_ref, event_ref])}
    failpoints.reached("projector.transaction", job_ref.id)
    if snapshots[event_ref.path].exists:
        return False
    job_snap = snapshots[job_ref.path]
    job = job_snap.to_dict() if job_snap.exists else None
    transaction.set(job_ref, project(job, event))
    transaction.create(event_ref, event_record(event))
    return True
