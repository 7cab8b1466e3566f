"""Job identity and the job states shared by the projector (writer) and the CLI (reader)."""

from __future__ import annotations

import hashlib
from enum import StrEnum

JOBS_COLLECTION = "jobs"
EVENTS_SUBCOLLECTION = "events"


class JobStatus(StrEnum):
    RECEIVED = "RECEIVED"
    INGESTED = "INGESTED"
    DIARIZING = "DIARIZING"
    DIARIZED = "DIARIZED"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    #: the producer deleted the job (its audio and results are gone); final whatever arrives later
    DELETED = "DELETED"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.REJECTED, JobStatus.FAILED, JobStatus.DELETED)


def job_id_for_object(bucket: str, name: str, generation: str | int) -> str:
    """Deterministic job id of an uploaded object: the same notification twice is the same job."""
    digest = hashlib.sha256(f"{bucket}/{name}#{generation}".encode()).hexdigest()
    return f"job_{digest[:24]}"
