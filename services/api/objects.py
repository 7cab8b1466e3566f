"""Cloud Storage, as the API uses it: read an object's metadata, sign PUT and GET URLs, delete a job's objects.

Signing needs a key: locally the service-account key file the stack generates (`api_signing_key_file`); on Cloud
Run the service's own identity through IAM signBlob (its token and e-mail, no key file anywhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from google.api_core import exceptions as gexc

from speakerline import storage


@dataclass(frozen=True)
class StoredObject:
    uri: str
    size: int
    generation: str
    content_type: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    def stat(self, uri: str) -> StoredObject | None: ...

    def sign_put(self, uri: str, headers: Mapping[str, str], ttl_s: int) -> str: ...

    def sign_get(self, uri: str, ttl_s: int, download_name: str | None = None) -> str: ...

    def delete_prefix(self, uri_prefix: str) -> list[str]:
        """Delete every object whose URI starts with `uri_prefix`; the URIs deleted."""
        ...

    def delete(self, uri: str) -> bool:
        """Delete one object; False when it was not there."""
        ...


class GcsObjects:
    def __init__(self, client: Any, key_file: Path | None = None, public_url: str | None = None) -> None:
        self._client = client
        self._key_file = key_file
        self._public_url = public_url.rstrip("/") if public_url else None
        self._signer: Any = None

    def _signing(self) -> dict[str, Any]:
        """generate_signed_url's signing arguments."""
        if self._key_file is not None:
            if self._signer is None:
                from google.oauth2 import service_account

                self._signer = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                    str(self._key_file)
                )
            return {"credentials": self._signer}
        import google.auth
        import google.auth.transport.requests

        if self._signer is None:
            self._signer, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        if not self._signer.valid:
            self._signer.refresh(google.auth.transport.requests.Request())
        # Compute Engine / Cloud Run credentials cannot sign locally: IAM signBlob signs as this e-mail.
        return {"service_account_email": self._signer.service_account_email, "access_token": self._signer.token}

    def _endpoint(self) -> dict[str, Any]:
        return {"api_access_endpoint": self._public_url} if self._public_url else {}

    def _blob(self, uri: str) -> Any:
        bucket, name = storage.parse_uri(uri)
        return self._client.bucket(bucket).blob(name)

    def stat(self, uri: str) -> StoredObject | None:
        bucket, name = storage.parse_uri(uri)
        blob = self._client.bucket(bucket).get_blob(name)
        if blob is None:
            return None
        return StoredObject(
            uri, int(blob.size or 0), str(blob.generation), blob.content_type, dict(blob.metadata or {})
        )

    def sign_put(self, uri: str, headers: Mapping[str, str], ttl_s: int) -> str:
        headers = dict(headers)
        content_type = headers.pop("content-type", None)
        url: str = self._blob(uri).generate_signed_url(
            version="v4",
            method="PUT",
            expiration=timedelta(seconds=ttl_s),
            content_type=content_type,
            headers=headers,
            **self._endpoint(),
            **self._signing(),
        )
        return url

    def sign_get(self, uri: str, ttl_s: int, download_name: str | None = None) -> str:
        extra = {"response_disposition": f'attachment; filename="{download_name}"'} if download_name else {}
        url: str = self._blob(uri).generate_signed_url(
            version="v4",
            method="GET",
            expiration=timedelta(seconds=ttl_s),
            **extra,
            **self._endpoint(),
            **self._signing(),
        )
        return url

    def delete(self, uri: str) -> bool:
        try:
            self._blob(uri).delete()
        except gexc.NotFound:
            return False
        return True

    def delete_prefix(self, uri_prefix: str) -> list[str]:
        bucket, prefix = storage.parse_uri(uri_prefix)
        deleted = []
        for blob in self._client.list_blobs(bucket, prefix=prefix):
            try:
                blob.delete()
            except gexc.NotFound:
                continue  # deleted meanwhile (a repeated DELETE): the outcome is the same
            deleted.append(storage.uri(bucket, blob.name))
        return deleted
