"""Payloads that several services emit, built in one place."""

from __future__ import annotations

from typing import Any

from speakerline.events import models
from speakerline.events.typed import Event, JobFailed, JobRejected

MAX_MESSAGE_CHARS = 2000


def job_error(stage: str, code: str, message: str, retriable: bool) -> models.JobError:
    return models.JobError(
        stage=models.Stage(stage), code=code, message=message[:MAX_MESSAGE_CHARS], retriable=retriable
    )


def job_failed(
    cause: Event[Any],
    *,
    job_id: str,
    request: models.Request | None,
    stage: str,
    code: str,
    message: str,
    retriable: bool,
    attempt: int,
    source: str,
) -> JobFailed:
    """`job.failed` caused by `cause`: the stage gave up on the job (`retriable`: the same input may succeed)."""
    data = models.JobFailedV1Data(
        job_id=job_id, request=request, error=job_error(stage, code, message, retriable), attempt=attempt
    )
    return JobFailed.caused_by(cause, data, source=source)


# How job.failed names a stage that gave up, for people.
STAGE_NAMES = {"ingest": "Ingest", "diarization": "Diarization", "postprocess": "Post-processing"}


def gave_up(cause: Event[Any], *, stage: str, code: str, error: BaseException, attempt: int, source: str) -> JobFailed:
    """`job.failed` (retriable) for the last delivery attempt of a job event whose handler kept failing: the job
    must not hang while its message waits in the dead-letter topic for ops to replay."""
    return job_failed(
        cause,
        job_id=cause.data.job_id,
        request=cause.data.request,
        stage=stage,
        code=code,
        message=f"{STAGE_NAMES[stage]} kept failing: {error}",
        retriable=True,
        attempt=attempt,
        source=source,
    )


def job_rejected(
    cause: Event[Any], *, job_id: str, request: models.Request | None, code: str, message: str, source: str
) -> JobRejected:
    """`job.rejected` caused by `cause`: ingest refused the input (terminal, never retriable)."""
    data = models.JobRejectedV1Data(
        job_id=job_id, request=request, error=job_error("ingest", code, message, retriable=False)
    )
    return JobRejected.caused_by(cause, data, source=source)
