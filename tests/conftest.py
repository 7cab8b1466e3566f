"""Shared fixtures. Integration and end-to-end tests run against the real emulators, started once per session."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from speakerline import stack

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.StackConfig]:
    """Pub/Sub + Firestore emulators and fake-gcs-server with the topology applied; no services yet."""
    cfg = stack.StackConfig(
        root=tmp_path_factory.mktemp("stack"),
        project="speakerline-test",
        pubsub_port=_free_port(),
        firestore_port=_free_port(),
        gcs_port=_free_port(),
        services=False,
    )
    saved = {k: os.environ.get(k) for k in cfg.emulator_env()}
    try:
        stack.up(cfg, say=lambda _: None)
        yield cfg
    finally:
        stack.down(cfg, say=lambda _: None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def unique() -> str:
    """A short unique suffix for resources a test creates for itself."""
    return uuid.uuid4().hex[:8]
