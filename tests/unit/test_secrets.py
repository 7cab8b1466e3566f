"""The one Secret Manager reader: version names as Secret Manager wants them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from speakerline.secrets import SecretManagerVersions


class RecordingClient:
    def __init__(self) -> None:
        self.names: list[str] = []

    def access_secret_version(self, *, name: str) -> Any:
        self.names.append(name)
        return SimpleNamespace(payload=SimpleNamespace(data=b"s3cret\n"))


@pytest.mark.parametrize(
    ("asked", "read"),
    [
        ("projects/p/secrets/hf", "projects/p/secrets/hf/versions/latest"),
        ("projects/p/secrets/hf/versions/3", "projects/p/secrets/hf/versions/3"),
    ],
)
def test_a_name_without_a_version_reads_the_latest(asked: str, read: str) -> None:
    versions = SecretManagerVersions()
    client = RecordingClient()
    versions.__dict__["_client"] = client  # the cached client, made on first use otherwise
    assert versions.access(asked) == "s3cret\n"
    assert client.names == [read]
