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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import google.api_core.exceptions as gexc
from google.cloud import firestore

from speakerline import failpoints
from speakerline.events import Event
from speakerline.jobs import EVENTS_SUBCOLLECTION, JOBS_COLLECTION

from . import writes
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


class ProjectionConflict(Exception):
    """A job document kept changing under this writer; the delivery is retried by Pub/Sub."""


@dataclass(eq=False)
class _Pending:
    """One `apply` call waiting for the write that carries its event."""

    event: Event[Any]
    job_id: str
    done: bool = False
    applied: bool = False
    error: BaseException | None = None
    #: set once the event is written (`done`) or, before that, when this caller is to write the lane's next batch
    wake: threading.Event = field(default_factory=threading.Event)


class _Lane:
    """Events waiting to be written, for the jobs whose id hashes here; at most one write of them at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: list[_Pending] = []
        #: a caller is writing a batch (or has just been handed the lane to write the next one)
        self.busy = False


class FirestoreJobStore:
    """`JobStore` on Firestore. Thread-safe; one instance per process.

    Group commit: every event of a job reads and writes the same jobs/{job_id} document, and each read and each
    commit is a round trip, so one write per event caps the projector at the store's round trips per second. Instead
    the events `apply` is called with from many handler threads at once wait in one of a few lanes (by job id); one
    caller at a time per lane takes every event waiting there and writes them all with one read (the job documents
    and the event documents) and one atomic commit (each new event's document, and each job's document folded over
    its new events, preconditioned as above), then hands each caller its own result. A lane's events are written
    one batch at a time, so the events of one job never race each other inside the process (the preconditions keep
    several projector instances correct). A batch that loses to another writer is retried job by job."""

    #: writes lost to another writer before the event is handed back to Pub/Sub for a later try
    MAX_CONFLICTS = 20
    #: events written by one commit at most (each event and each job is one write; Firestore takes 500 a commit)
    MAX_BATCH = 200

    def __init__(self, client: firestore.Client, lanes: int = 4) -> None:
        self._client = client
        self._lanes = tuple(_Lane() for _ in range(lanes))

    def apply(self, event: Event[Any]) -> bool:
        job_id = job_id_of(event)
        item = _Pending(event, job_id)
        lane = self._lanes[zlib.crc32(job_id.encode()) % len(self._lanes)]
        with lane.lock:
            lane.queue.append(item)
            leads, lane.busy = not lane.busy, True
        if not leads:
            item.wake.wait()  # written by another caller's batch, or handed the lane (each waiter wakes once)
        if not item.done:
            # This caller writes every event waiting in the lane, its own first: a caller leads only when its event
            # is at the head of the queue (an idle lane's queue is empty; a handed-over lane goes to the head).
            with lane.lock:
                batch = lane.queue[: self.MAX_BATCH]
                del lane.queue[: self.MAX_BATCH]
            try:
                self._flush(batch)
            finally:
                with lane.lock:
                    if lane.queue:
                        lane.queue[0].wake.set()  # the oldest waiter writes the next batch
                    else:
                        lane.busy = False
        if item.error is not None:
            raise item.error
        return item.applied

    def _flush(self, batch: list[_Pending]) -> None:
        """Write `batch`; every item is done afterwards, with its result or its error."""
        groups: dict[str, list[_Pending]] = {}
        for item in batch:
            groups.setdefault(item.job_id, []).append(item)
        try:
            if self._write(groups):
                return
            for job_id, items in groups.items():  # lost to another writer: each job on its own, read again
                for conflict in range(self.MAX_CONFLICTS):
                    time.sleep(random.uniform(0, min(0.05 * 2**conflict, 1.0)))  # another instance wrote the job
                    if self._write({job_id: items}):
                        break
                else:
                    _fail(
                        items, ProjectionConflict(f"jobs/{job_id} changed under {self.MAX_CONFLICTS} writes in a row")
                    )
        except BaseException as error:
            _fail(batch, error)
            if not isinstance(error, Exception):
                raise

    def _write(self, groups: Mapping[str, list[_Pending]]) -> bool:
        """Read the jobs and events of `groups`, commit the new events and the jobs folded over them; False: lost to
        a concurrent writer (nothing written, nothing done). An event applied before is done with False."""
        jobs = self._client.collection(JOBS_COLLECTION)
        job_refs = {job_id: jobs.document(job_id) for job_id in groups}
        event_refs = {
            id(item): job_refs[job_id].collection(EVENTS_SUBCOLLECTION).document(item.event.id)
            for job_id, items in groups.items()
            for item in items
        }
        refs = {ref.path: ref for ref in [*job_refs.values(), *event_refs.values()]}
        snapshots = {snap.reference.path: snap for snap in self._client.get_all(list(refs.values()))}
        batch = self._client.batch()
        results: list[tuple[_Pending, bool]] = []
        new_events = 0
        for job_id, items in groups.items():
            failpoints.reached("projector.apply", job_id)
            job_ref, job_snap = job_refs[job_id], snapshots[job_refs[job_id].path]
            before = (job_snap.to_dict() or {}) if job_snap.exists else None
            doc: dict[str, Any] | None = None
            seen: set[str] = set()
            for item in items:
                event_ref = event_refs[id(item)]
                if snapshots[event_ref.path].exists or item.event.id in seen:
                    results.append((item, False))  # applied before (or twice in this batch: a redelivery)
                    continue
                seen.add(item.event.id)
                doc = project(doc if doc is not None else before, item.event)
                writes.create(batch, event_ref, event_record(item.event))
                results.append((item, True))
                new_events += 1
            if doc is None:
                continue
            if before is not None:
                writes.update(batch, job_ref, *changes(before, doc), last_update_time=job_snap.update_time)
            else:
                writes.create(batch, job_ref, doc)
        if new_events:
            try:
                batch.commit()
            except (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.Aborted):
                return False
        for item, applied in results:
            item.applied, item.done = applied, True
            item.wake.set()
        return True


def _fail(items: list[_Pending], error: BaseException) -> None:
    for item in items:
        if not item.done:
            item.error, item.done = error, True
            item.wake.set()


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What turns document `before` into `after` exactly (`project` never changes its input): every top-level field
    of `after` that differs from `before`, to be set whole (a map value replaces the map), and every field `after`
    dropped, to be deleted. The fields kept as they were are left out (most of a job document, its request above all,
    stays as it is from one event to the next; the write's precondition guarantees the stored document is `before`).
    `update` is the only write that takes a `last_update_time` precondition."""
    fields = {key: value for key, value in after.items() if key not in before or not identical(before[key], value)}
    deleted = sorted(before.keys() - after.keys())
    if not fields and not deleted:  # nothing changed (a projection always counts the event: never in practice)
        fields = dict(after)
    return fields, deleted


def identical(a: Any, b: Any) -> bool:
    """Whether Firestore would store `a` and `b` alike: equal, and of the same types all the way down (1 == 1.0 and
    [1] == (1,) in Python, but not in a document). Any datetime equals an equal datetime (the client reads back its
    own subclass)."""
    if isinstance(a, datetime) or isinstance(b, datetime):
        return isinstance(a, datetime) and isinstance(b, datetime) and a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(identical(value, b[key]) for key, value in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
