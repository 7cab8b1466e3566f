"""Secret Manager behind a small interface: the `Platform`'s `secrets` adapter (tests give it a double)."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Protocol


class SecretVersions(Protocol):
    """Reads a Secret Manager version (`projects/p/secrets/s/versions/v`; a name without a version reads
    `latest`)."""

    def access(self, version: str) -> str: ...


class SecretManagerVersions:
    """`SecretVersions` on Secret Manager, its client made on first use: the one Secret Manager reader (services'
    secret settings through `Platform.secret`, the diarization engines' Hugging Face token)."""

    @cached_property
    def _client(self) -> Any:
        from google.cloud import secretmanager

        return secretmanager.SecretManagerServiceClient()

    def access(self, version: str) -> str:
        if "/versions/" not in version:
            version += "/versions/latest"
        secret: str = self._client.access_secret_version(name=version).payload.data.decode("utf-8")
        return secret
