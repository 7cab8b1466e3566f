"""Job identity and the job states shared by the projector (writer) and the CLI (reader)."""

from __future__ import annotations

import hashlib
import uuid
from enum import StrEnum

from speakerline.events import CloudEvent

JOBS_COLLECTION = "jobs"
EVENTS_SUBCOLLECTION = "events"
_ID_NAMESPACE = uuid.UUID("6f1d6a52-7b1e-4c8e-9a55-2f0f3d9b8e11")


class JobStatus(StrEnum):
    RECEIVED = "RECEIVED"
    INGESTED = "INGESTED"
    DIARIZING = "DIARIZING"
    DIARIZED = "DIARIZED"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.REJECTED, JobStatus.FAILED)


def job_id_for_object(bucket: str, name: str, generation: str | int) -> str:
    """Deterministic job id of an uploaded object: the same notification twice is the same job."""
    digest = hashlib.sha256(f"{bucket}/{name}#{generation}".encode()).hexdigest()
    return f"job_{digest[:24]}"


def derived_event_id(cause: CloudEvent, event_type: str, discriminator: str = "") -> str:
    """A stable id for the event that handling `cause` produces, so a redelivered input yields the same output
    event and consumers deduplicate it like any other repeat."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{cause['id']}|{event_type}|{discriminator}"))
