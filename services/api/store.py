"""Firestore, as the API uses it: it reads the projection (`jobs/{job_id}`, written only by the projector) and
keeps two collections of its own:

    api_claims/{job_id}           {producer, file_name, created_at}: the producer of a job the API announced
                                  (signed upload, POST /v1/jobs) before the projector has seen any event of it
    api_idempotency/{sha256}      {producer, body_sha256, job_id, published, created_at}: one per Idempotency-Key
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from google.api_core import exceptions as gexc

from speakerline.jobs import JOBS_COLLECTION

CLAIMS: Final = "api_claims"
IDEMPOTENCY: Final = "api_idempotency"

Doc = dict[str, Any]


class ApiStore(Protocol):
    def job(self, job_id: str) -> Doc | None: ...

    def jobs(self, producer: str, status: str | None, limit: int, after: str | None) -> tuple[list[Doc], bool]:
        """Newest first, after the job `after` (a previous page's last); True when more follow."""
        ...

    def watch(self, job_id: str, on_change: Callable[[Doc | None], None]) -> Callable[[], None]:
        """Call `on_change` with the job document (None while there is none) now and at every change, on another
        thread; the returned function stops watching."""
        ...

    def claim(self, job_id: str, producer: str, file_name: str | None) -> None: ...

    def claim_of(self, job_id: str) -> Doc | None: ...

    def reserve(self, scope: str, record: Doc) -> Doc | None:
        """Store `record` under `scope` unless one is there: None when stored, else the existing record."""
        ...

    def mark_published(self, scope: str) -> None: ...


class InvalidPageToken(ValueError):
    pass


class FirestoreApiStore:
    def __init__(self, client: Any) -> None:  # google.cloud.firestore.Client
        self._client = client

    def _jobs(self) -> Any:
        return self._client.collection(JOBS_COLLECTION)

    def job(self, job_id: str) -> Doc | None:
        snap = self._jobs().document(job_id).get()
        return snap.to_dict() if snap.exists else None

    def jobs(self, producer: str, status: str | None, limit: int, after: str | None) -> tuple[list[Doc], bool]:
        from google.cloud import firestore
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self._jobs().where(filter=FieldFilter("request.producer", "==", producer))
        if status:
            query = query.where(filter=FieldFilter("status", "==", status))
        query = query.order_by("created_at", direction=firestore.Query.DESCENDING)
        if after:
            cursor = self._jobs().document(after).get()
            doc = cursor.to_dict() if cursor.exists else None
            if doc is None or (doc.get("request") or {}).get("producer") != producer:
                raise InvalidPageToken(after)
            query = query.start_after(cursor)
        docs = [snap.to_dict() for snap in query.limit(limit + 1).stream()]
        return docs[:limit], len(docs) > limit

    def watch(self, job_id: str, on_change: Callable[[Doc | None], None]) -> Callable[[], None]:
        def callback(snapshots: list[Any], _changes: Any, _read_time: Any) -> None:
            # A document that does not exist (yet) comes as no snapshot at all, or one that does not exist.
            if not snapshots:
                on_change(None)
            for snap in snapshots:
                on_change(snap.to_dict() if snap.exists else None)

        watch = self._jobs().document(job_id).on_snapshot(callback)
        return watch.unsubscribe  # type: ignore[no-any-return]

    def claim(self, job_id: str, producer: str, file_name: str | None) -> None:
        self._client.collection(CLAIMS).document(job_id).set(
            {"producer": producer, "file_name": file_name, "created_at": datetime.now(UTC)}
        )

    def claim_of(self, job_id: str) -> Doc | None:
        snap = self._client.collection(CLAIMS).document(job_id).get()
        return snap.to_dict() if snap.exists else None

    def reserve(self, scope: str, record: Doc) -> Doc | None:
        ref = self._client.collection(IDEMPOTENCY).document(scope)
        try:
            ref.create(record)
        except (gexc.AlreadyExists, gexc.Conflict):
            existing: Doc | None = ref.get().to_dict()
            return existing or record
        return None

    def mark_published(self, scope: str) -> None:
        self._client.collection(IDEMPOTENCY).document(scope).update({"published": True})
