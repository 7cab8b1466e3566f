"""What a producer does from a laptop: upload a file (the bucket notification starts the job), follow the job in
Firestore until it ends, fetch the timeline. Used by the `speakerline submit` and `jobs` commands."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google.cloud.storage as gcs
from google.cloud import firestore

from speakerline import jobpaths, storage
from speakerline.jobs import JobStatus, job_id_for_object
from speakerline.settings import Settings
from speakerline.speaker_options import given, problems
from speakerline.timeline import Turn, turns_from_json
from speakerline_tools import jobstore


@dataclass(frozen=True)
class Submission:
    job_id: str
    uri: str
    generation: str


def speaker_options(num: int | None, low: int | None, high: int | None) -> dict[str, int]:
    """The options of `--num-speakers`/`--min-speakers`/`--max-speakers`; ValueError says what is wrong. A count's
    range is left to ingest, which rejects the job with its reason."""
    found = problems(num, low, high, fewest=None, most=None, named=lambda key: "--" + key.replace("_", "-"))
    if found:
        raise ValueError(found[0].message)
    return given(num, low, high)


def submit(
    client: gcs.Client,
    path: Path,
    *,
    options: Mapping[str, int],
    webhook_url: str | None = None,
    correlation_id: str | None = None,
    bucket: str | None = None,
) -> Submission:
    """Upload `path` to the uploads bucket with the job's options as object metadata."""
    bucket = bucket or Settings().bucket("uploads")
    name = jobpaths.submission(uuid.uuid4().hex, path.name)
    blob = client.bucket(bucket).blob(name)
    metadata = {key: str(value) for key, value in options.items()}
    metadata.update(filename=path.name, submitted_by="cli")
    if webhook_url:
        metadata["webhook_url"] = webhook_url
    if correlation_id:
        metadata["correlation_id"] = correlation_id
    blob.metadata = metadata
    blob.upload_from_filename(str(path))
    generation = str(blob.generation)
    return Submission(job_id_for_object(bucket, name, generation), storage.uri(bucket, name), generation)


def wait(
    db: firestore.Client,
    job_id: str,
    *,
    timeout_s: float,
    on_status: Callable[[str, Mapping[str, Any]], None] = lambda status, job: None,
    on_progress: Callable[[Mapping[str, Any]], None] = lambda progress: None,
    poll_s: float = 0.5,
) -> dict[str, Any] | None:
    """Poll jobs/{job_id} until a terminal status (or the timeout); report each new status, and each new
    diarization progress report while the job is diarizing."""
    deadline = time.monotonic() + timeout_s
    last = None
    last_progress = None
    while time.monotonic() < deadline:
        job = jobstore.get_job(db, job_id)
        if job is not None:
            if job["status"] != last:
                last = job["status"]
                on_status(last, job)
            if JobStatus(str(last)).terminal:
                return job
            progress = job.get("progress")
            if last == JobStatus.DIARIZING and progress and progress != last_progress:
                last_progress = progress
                on_progress(progress)
        time.sleep(poll_s)
    return jobstore.get_job(db, job_id)


def segments(blobs: storage.BlobStore, job: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The output.json segments of a completed job."""
    import json

    output = json.loads(blobs.read_bytes(job["result"]["output_uri"]))
    return list(output["segments"])


def turns(segments_json: list[dict[str, Any]]) -> list[Turn]:
    return turns_from_json(segments_json)


def format_timeline(turn_list: list[Turn]) -> str:
    lines = []
    for turn in turn_list:
        lines.append(f"{_clock(turn.start)} - {_clock(turn.end)}  {turn.speaker}  ({turn.duration:.1f} s)")
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes):02d}:{secs:06.3f}"
