"""The local stack's webhook signing key: generated once when none is configured, shown by `stack env`."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from speakerline_tools import stack


@pytest.fixture(autouse=True)
def _no_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(stack.WEBHOOK_KEY_ENV, raising=False)
    monkeypatch.delenv(stack.WEBHOOK_KEY_ENV + "_SECRET", raising=False)


def _exported(cfg: stack.StackConfig) -> dict[str, str]:
    pairs = (shlex.split(line)[1].split("=", 1) for line in stack.env_lines(cfg))
    return dict(pairs)


def test_without_a_configured_key_one_is_generated_once_and_kept(tmp_path: Path) -> None:
    cfg = stack.StackConfig(root=tmp_path)
    assert cfg.webhook_signing_key() is None and stack.WEBHOOK_KEY_ENV not in _exported(cfg)
    stack.ensure_webhook_key(cfg)
    key = cfg.webhook_signing_key()
    assert key and len(key) >= 32
    assert cfg.webhook_key_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    stack.ensure_webhook_key(cfg)
    assert cfg.webhook_signing_key() == key  # survives restarts: receivers keep verifying
    assert _exported(cfg)[stack.WEBHOOK_KEY_ENV] == key
    assert stack._webhook_key_env(cfg) == {stack.WEBHOOK_KEY_ENV: key}


def test_a_configured_key_wins_and_nothing_is_generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = stack.StackConfig(root=tmp_path, service_env={stack.WEBHOOK_KEY_ENV: "from-the-stack-env"})
    stack.ensure_webhook_key(cfg)
    assert not cfg.webhook_key_file.exists()
    assert _exported(cfg)[stack.WEBHOOK_KEY_ENV] == "from-the-stack-env"
    monkeypatch.setenv(stack.WEBHOOK_KEY_ENV, "from the shell; with spaces")
    other = stack.StackConfig(root=tmp_path / "other")
    stack.ensure_webhook_key(other)
    assert not other.webhook_key_file.exists()
    assert _exported(other)[stack.WEBHOOK_KEY_ENV] == "from the shell; with spaces"  # quoted for eval


def test_a_secret_manager_version_counts_as_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(stack.WEBHOOK_KEY_ENV + "_SECRET", "projects/p/secrets/k/versions/1")
    cfg = stack.StackConfig(root=tmp_path)
    stack.ensure_webhook_key(cfg)
    assert not cfg.webhook_key_file.exists()
