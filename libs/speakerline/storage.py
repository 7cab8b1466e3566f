"""Cloud Storage adapter: the few blob operations the services need, addressed by gs:// URIs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, cast

import google.cloud.storage as storage
from google.api_core import exceptions as gexc
from google.cloud.storage.retry import DEFAULT_RETRY

_GS_URI = re.compile(r"^gs://(?P<bucket>[^/]+)/(?P<name>.+)$")

# Uploads are streamed in chunks of this size (resumable uploads need a multiple of 256 KiB).
CHUNK_BYTES = 8 * 1024 * 1024
# Readers refill this much per request: small, because FFmpeg seeks (to the end for durations, and back), and
# each refill is held in memory.
READ_CHUNK_BYTES = 1024 * 1024


class ObjectNotFound(Exception):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size_bytes: int
    content_type: str | None
    generation: str


def parse_uri(uri: str) -> tuple[str, str]:
    match = _GS_URI.match(uri)
    if not match:
        raise ValueError(f"not a gs:// object URI: {uri!r}")
    return match["bucket"], match["name"]


def uri(bucket: str, name: str) -> str:
    return f"gs://{bucket}/{name}"


class BlobStore(Protocol):
    def stat(self, uri: str) -> ObjectInfo: ...

    def open_read(self, uri: str) -> BinaryIO: ...

    def read_bytes(self, uri: str) -> bytes: ...

    def download(self, uri: str, path: Path) -> None: ...

    def upload_file(self, path: Path, uri: str, content_type: str) -> None: ...

    def upload_bytes(self, data: bytes, uri: str, content_type: str) -> None: ...


# Every call retries transient failures (connection refused or reset, 408, 429, 5xx) with backoff for up to 5 min,
# uploads included: the library retries an upload only with a generation precondition, but every object
# speakerline writes is derived from its job, so writing it again is harmless. A storage outage thus stalls the
# handler (its lease is kept alive meanwhile) instead of burning its Pub/Sub delivery attempts; within 10 s of
# storage coming back, the job goes on.
RETRY = DEFAULT_RETRY.with_delay(initial=1.0, maximum=10.0, multiplier=2.0).with_timeout(300.0)


class GcsBlobStore:
    def __init__(self, client: storage.Client) -> None:
        self.client = client

    def _blob(self, object_uri: str) -> storage.Blob:
        bucket, name = parse_uri(object_uri)
        return self.client.bucket(bucket).blob(name, chunk_size=CHUNK_BYTES)

    def stat(self, object_uri: str) -> ObjectInfo:
        bucket, name = parse_uri(object_uri)
        blob = self.client.bucket(bucket).get_blob(name, retry=RETRY)
        if blob is None:
            raise ObjectNotFound(object_uri)
        return ObjectInfo(object_uri, int(blob.size or 0), blob.content_type, str(blob.generation))

    def open_read(self, object_uri: str) -> BinaryIO:
        # A seekable reader fetching READ_CHUNK_BYTES at a time: the whole object is never in memory.
        try:
            reader = cast(BinaryIO, self._blob(object_uri).open("rb", chunk_size=READ_CHUNK_BYTES, retry=RETRY))
        except gexc.NotFound as exc:
            raise ObjectNotFound(object_uri) from exc
        return reader

    def read_bytes(self, object_uri: str) -> bytes:
        try:
            data: bytes = self._blob(object_uri).download_as_bytes(retry=RETRY)
        except gexc.NotFound as exc:
            raise ObjectNotFound(object_uri) from exc
        return data

    def download(self, object_uri: str, path: Path) -> None:
        try:
            self._blob(object_uri).download_to_filename(str(path), retry=RETRY)
        except gexc.NotFound as exc:
            raise ObjectNotFound(object_uri) from exc

    def upload_file(self, path: Path, object_uri: str, content_type: str) -> None:
        self._blob(object_uri).upload_from_filename(str(path), content_type=content_type, retry=RETRY)

    def upload_bytes(self, data: bytes, object_uri: str, content_type: str) -> None:
        self._blob(object_uri).upload_from_string(data, content_type=content_type, retry=RETRY)
