"""The local stack's keys (the webhook signing key, generated once when none is configured and shown by `stack env`;
the studio link's API key) and how it starts every topology service."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from speakerline_tools import stack, stack_keys


@pytest.fixture(autouse=True)
def _no_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(stack_keys.WEBHOOK_KEY_ENV, raising=False)
    monkeypatch.delenv(stack_keys.WEBHOOK_KEY_ENV + "_SECRET", raising=False)


def _exported(cfg: stack.StackConfig) -> dict[str, str]:
    pairs = (shlex.split(line)[1].split("=", 1) for line in stack.env_lines(cfg))
    return dict(pairs)


def test_without_a_configured_key_one_is_generated_once_and_kept(tmp_path: Path) -> None:
    cfg = stack.StackConfig(root=tmp_path)
    assert cfg.webhook_signing_key() is None and stack_keys.WEBHOOK_KEY_ENV not in _exported(cfg)
    stack_keys.ensure_webhook_key(cfg)
    key = cfg.webhook_signing_key()
    assert key and len(key) >= 32
    assert cfg.webhook_key_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    stack_keys.ensure_webhook_key(cfg)
    assert cfg.webhook_signing_key() == key  # survives restarts: receivers keep verifying
    assert _exported(cfg)[stack_keys.WEBHOOK_KEY_ENV] == key
    assert stack._webhook_key_env(cfg) == {stack_keys.WEBHOOK_KEY_ENV: key}


def test_a_configured_key_wins_and_nothing_is_generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = stack.StackConfig(root=tmp_path, service_env={stack_keys.WEBHOOK_KEY_ENV: "from-the-stack-env"})
    stack_keys.ensure_webhook_key(cfg)
    assert not cfg.webhook_key_file.exists()
    assert _exported(cfg)[stack_keys.WEBHOOK_KEY_ENV] == "from-the-stack-env"
    monkeypatch.setenv(stack_keys.WEBHOOK_KEY_ENV, "from the shell; with spaces")
    other = stack.StackConfig(root=tmp_path / "other")
    stack_keys.ensure_webhook_key(other)
    assert not other.webhook_key_file.exists()
    assert _exported(other)[stack_keys.WEBHOOK_KEY_ENV] == "from the shell; with spaces"  # quoted for eval


def test_a_secret_manager_version_counts_as_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(stack_keys.WEBHOOK_KEY_ENV + "_SECRET", "projects/p/secrets/k/versions/1")
    cfg = stack.StackConfig(root=tmp_path)
    stack_keys.ensure_webhook_key(cfg)
    assert not cfg.webhook_key_file.exists()


def test_up_makes_one_studio_key_for_the_local_producer_and_keeps_it_while_firestore_knows_it(tmp_path: Path) -> None:
    from speakerline import apikeys
    from tests.fakes import MemoryFirestore

    cfg = stack.StackConfig(root=tmp_path, api_port=8099)
    keys = apikeys.FirestoreApiKeys(MemoryFirestore())
    key = stack_keys.ensure_studio_key(cfg, keys)
    verified = keys.verify(key)
    assert verified is not None and verified.producer == stack_keys.LOCAL_PRODUCER
    assert cfg.studio_key_file.stat().st_mode & 0o077 == 0
    assert stack_keys.ensure_studio_key(cfg, keys) == key  # the same link on every `up`
    assert cfg.studio_link(key) == f"http://127.0.0.1:8099/#key={key}"
    # the emulator restarted empty: the kept key is unknown there, so a new one is made and kept
    fresh = apikeys.FirestoreApiKeys(MemoryFirestore())
    renewed = stack_keys.ensure_studio_key(cfg, fresh)
    assert renewed != key and fresh.verify(renewed) is not None
    assert cfg.studio_key_file.read_text().strip() == renewed


def test_every_topology_service_starts_the_same_way_the_api_on_the_stack_port(tmp_path: Path) -> None:
    from speakerline import topology

    cfg = stack.StackConfig(root=tmp_path, api_port=8099)
    for service in topology.load().services.values():
        comp = stack.service_component(cfg, {}, service)
        assert comp.argv[1:] == ["-m", "speakerline.worker", service.name] and comp.kind == "service"
        assert comp.env["SPEAKERLINE_READY_FILE"] == str(cfg.run / f"{service.name}.ready")
        assert ("PORT" in comp.env) == (service.entrypoint == "http")
    api = stack.service_component(cfg, {}, topology.load().services["api"])
    assert (api.env["PORT"], api.env["SPEAKERLINE_HTTP_HOST"]) == ("8099", "127.0.0.1")
