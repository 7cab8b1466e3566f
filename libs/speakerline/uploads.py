"""The upload contract between producers, the HTTP API (which signs upload URLs) and ingest (which reads the
object): the custom metadata keys an uploaded object may carry (`x-goog-meta-<key>` headers) and the safe file
name of an upload (its object name is `jobpaths.JobPaths.upload`)."""

from __future__ import annotations

import re
import unicodedata
from typing import Final

# Speaker options, as whole numbers.
NUM_SPEAKERS: Final = "num_speakers"
MIN_SPEAKERS: Final = "min_speakers"
MAX_SPEAKERS: Final = "max_speakers"
OPTIONS: Final = (NUM_SPEAKERS, MIN_SPEAKERS, MAX_SPEAKERS)
WEBHOOK_URL: Final = "webhook_url"
CORRELATION_ID: Final = "correlation_id"
FILENAME: Final = "filename"
SUBMITTED_BY: Final = "submitted_by"
#: the API producer (key owner) the job belongs to
PRODUCER: Final = "producer"
#: the job id the API announced when it signed the upload URL
JOB_ID: Final = "job_id"
METADATA_KEYS: Final = (*OPTIONS, WEBHOOK_URL, CORRELATION_ID, FILENAME, SUBMITTED_BY, PRODUCER, JOB_ID)

#: Headers a browser sends with a signed PUT besides Content-Type: the CORS allowlist of the uploads bucket.
#: `x-goog-if-generation-match: 0` makes a signed URL create its object once, never overwrite it.
UPLOAD_HEADERS: Final = (
    "x-goog-if-generation-match",
    "x-goog-content-length-range",
    *(f"x-goog-meta-{key}" for key in METADATA_KEYS),
)

# \Z, not $: `$` also matches before a trailing newline.
JOB_ID_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{7,63}\Z")
PRODUCER_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_CHARS: Final = 200


def safe_file_name(name: str) -> str:
    """A producer's file name made safe as the last part of an object name and for display: the base name only
    (no directories), ASCII letters, digits, '.', '_' and '-', no leading dot, at most 200 characters, the
    extension kept (ingest sniffs the content anyway)."""
    base = re.split(r"[\\/]", name)[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem.strip("."):
        stem, ext = base, ""
    stem, ext = _ascii(stem).strip("._-") or "audio", _ascii(ext).strip("._-")
    cleaned = f"{stem}.{ext}" if ext else stem
    if len(cleaned) > MAX_NAME_CHARS:
        _, dot, ext = cleaned.rpartition(".")
        keep = ext if dot and len(ext) <= 10 else ""
        cleaned = cleaned[: MAX_NAME_CHARS - len(keep) - 1].rstrip("._-") + ("." + keep if keep else "")
    return cleaned


def _ascii(text: str) -> str:
    return _UNSAFE.sub("_", unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode())
