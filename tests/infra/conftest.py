"""The deployment files, read once per test module."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .deploy_files import COMPOSE_FILE, TERRAFORM, TF_FILES, TOPOLOGY_FILE


@pytest.fixture(scope="module")
def topology() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(TOPOLOGY_FILE.read_text())
    return doc


@pytest.fixture(scope="module")
def tf() -> str:
    return "\n".join((TERRAFORM / name).read_text() for name in TF_FILES)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return doc
