"""The API's request and response bodies (pydantic): they are the OpenAPI document at /openapi.json."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from speakerline import speaker_options

Status = Literal[
    "PENDING", "RECEIVED", "INGESTED", "DIARIZING", "DIARIZED", "COMPLETED", "REJECTED", "FAILED", "DELETED"
]
Format = Literal["json", "rttm", "vtt"]
JOB_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{7,63}$"


# Request bodies are strict: an unknown field is refused (a typo must not silently drop an option), and so is a
# value of the wrong JSON type ("size": "10", "num_speakers": true or 3.0), which lax parsing would coerce.
STRICT = ConfigDict(extra="forbid", strict=True)
_FEWEST, _MOST = speaker_options.FEWEST, speaker_options.MOST


class SpeakerOptions(BaseModel):
    """Give num_speakers when known, or a min/max range; neither means the engine estimates the count."""

    model_config = STRICT

    num_speakers: int | None = Field(None, ge=_FEWEST, le=_MOST, description="Exact number of speakers.")
    min_speakers: int | None = Field(None, ge=_FEWEST, le=_MOST, description="Lower bound on the number of speakers.")
    max_speakers: int | None = Field(None, ge=_FEWEST, le=_MOST, description="Upper bound on the number of speakers.")
    webhook_url: str | None = Field(
        None,
        max_length=2048,
        pattern=r"^https?://[\x21-\x7e]+$",
        description="Where the notification service POSTs the signed job outcome.",
    )
    correlation_id: str | None = Field(
        None,
        max_length=256,
        pattern=r"^[\x20-\x7e]*$",
        description="Your own identifier (printable ASCII), echoed in every event of the job.",
    )

    @model_validator(mode="after")
    def _one_way_to_count(self) -> SpeakerOptions:
        # Each count's range is its field's (checked before this runs, and shown in the OpenAPI document).
        found = speaker_options.problems(
            self.num_speakers, self.min_speakers, self.max_speakers, fewest=None, most=None
        )
        if found:
            raise ValueError(found[0].message)
        return self

    def options(self) -> dict[str, int]:
        return speaker_options.given(self.num_speakers, self.min_speakers, self.max_speakers)


class UploadRequest(SpeakerOptions):
    file_name: str = Field(min_length=1, max_length=1024, description="The file's name, for display.")
    content_type: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$",
        description="The file's media type, without parameters: audio/*, video/* (its audio track is used), "
        "application/ogg or application/octet-stream.",
    )
    size: int = Field(ge=1, description="The file's size in bytes; the signed URL accepts a file of at most this size.")

    model_config = ConfigDict(
        **STRICT,
        json_schema_extra={
            "examples": [{"file_name": "standup.mp3", "content_type": "audio/mpeg", "size": 2841600, "num_speakers": 3}]
        },
    )


class Upload(BaseModel):
    job_id: str = Field(description="The id the job will have once the file is uploaded.")
    upload_url: str = Field(description="V4 signed URL: PUT the file's bytes there, with every upload header.")
    upload_method: Literal["PUT"] = "PUT"
    upload_headers: dict[str, str] = Field(description="Headers the PUT must send exactly (they are signed).")
    gs_uri: str = Field(description="Where the file will be.")
    expires_in: int = Field(description="Seconds the upload URL stays valid.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "job_3f9c2a7b1d4e5f60718293a4",
                    "upload_url": "https://storage.googleapis.com/p-speakerline-uploads/api/job_3f9c2a7b1d4e5f60718293a4/standup.mp3?X-Goog-Algorithm=GOOG4-RSA-SHA256&...",
                    "upload_method": "PUT",
                    "upload_headers": {
                        "content-type": "audio/mpeg",
                        "x-goog-if-generation-match": "0",
                        "x-goog-meta-job_id": "job_3f9c2a7b1d4e5f60718293a4",
                        "x-goog-meta-producer": "newsroom",
                    },
                    "gs_uri": "gs://p-speakerline-uploads/api/job_3f9c2a7b1d4e5f60718293a4/standup.mp3",
                    "expires_in": 3600,
                }
            ]
        }
    )


class JobRequest(SpeakerOptions):
    input_uri: str = Field(
        pattern=r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/.+$",
        max_length=2048,
        description="An object of the uploads bucket.",
    )

    model_config = ConfigDict(
        **STRICT,
        json_schema_extra={
            "examples": [
                {
                    "input_uri": "gs://speakerline-uploads/interviews/standup.mp3",
                    "min_speakers": 2,
                    "max_speakers": 4,
                    "correlation_id": "standup-2026-11-20",
                }
            ]
        },
    )


class Accepted(BaseModel):
    job_id: str
    status: Status

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"job_id": "job_3f9c2a7b1d4e5f60718293a4", "status": "PENDING"}]}
    )


class Segment(BaseModel):
    speaker: str
    start: float
    end: float


class Job(BaseModel):
    """A job as the projector keeps it (times are RFC 3339); `segments` only from GET /v1/jobs/{id}."""

    job_id: str
    status: Status
    file_name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    stages: dict[str, datetime | None] = Field(default_factory=dict)
    progress: dict[str, Any] | None = None
    engine: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    result: dict[str, Any] | None = Field(None, description="{summary, formats} once COMPLETED.")
    error: dict[str, Any] | None = Field(None, description="{stage, code, message, retriable} of a failed job.")
    attempts: dict[str, int] | None = None
    notifications: list[dict[str, Any]] = Field(default_factory=list)
    segments: list[Segment] | None = None
    exclusive_segments: list[Segment] | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "job_3f9c2a7b1d4e5f60718293a4",
                    "status": "COMPLETED",
                    "file_name": "standup.mp3",
                    "created_at": "2026-11-20T09:30:00Z",
                    "updated_at": "2026-11-20T09:30:41Z",
                    "request": {"options": {"num_speakers": 3}, "producer": "newsroom"},
                    "stages": {"received_at": "2026-11-20T09:30:00Z", "completed_at": "2026-11-20T09:30:41Z"},
                    "audio": {"duration_s": 184.2},
                    "result": {
                        "summary": {
                            "num_speakers": 3,
                            "speakers": [
                                {"speaker": "SPEAKER_00", "talk_time_s": 71.4, "share": 0.42, "num_segments": 31}
                            ],
                        },
                        "formats": ["json", "rttm", "vtt"],
                    },
                    "segments": [{"speaker": "SPEAKER_00", "start": 0.5, "end": 4.2}],
                }
            ]
        }
    )


class JobList(BaseModel):
    jobs: list[Job]
    next_page_token: str | None = Field(None, description="Pass as page_token for the next page; null at the end.")


class SignedUrl(BaseModel):
    url: str
    format: str
    expires_in: int


class Me(BaseModel):
    producer: str
    key_id: str | None = Field(None, description="The API key's id (null for an ID token).")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
