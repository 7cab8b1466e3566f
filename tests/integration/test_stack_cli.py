"""`speakerline stack` as a user runs it: up (twice), status, env, the API started as every service is and its studio
link signing in, a component dying, down leaving nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from speakerline import apikeys
from speakerline_tools import stack, stack_keys

pytestmark = pytest.mark.integration


def _free_base_port() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base < 65000 and all(_port_free(base + i) for i in range(4)):
            return base
    raise RuntimeError("no four consecutive free ports")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _speakerline(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    env["SPEAKERLINE_STACK_DIR"] = str(root)
    cli = str(Path(sys.executable).with_name("speakerline"))
    return subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=180)


def _group_members(pgid: int) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == pgid]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_stack_lifecycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, base = tmp_path / "stack", _free_base_port()
    up = _speakerline(root, "stack", "up", "--no-services", "--base-port", str(base))
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        again = _speakerline(root, "stack", "up", "--no-services")
        assert again.returncode == 0 and again.stdout.count("already running") == 3, again.stdout
        status = _speakerline(root, "stack", "status")
        assert status.returncode == 0, status.stdout
        assert "applied" in status.stdout and status.stdout.count("healthy") == 3
        env = _speakerline(root, "stack", "env").stdout
        assert f"export PUBSUB_EMULATOR_HOST=127.0.0.1:{base}" in env
        assert f"export FIRESTORE_EMULATOR_HOST=127.0.0.1:{base + 1}" in env
        assert f"export STORAGE_EMULATOR_HOST=http://127.0.0.1:{base + 2}" in env
        assert "export GOOGLE_CLOUD_PROJECT=" in env
        assert f"export SPEAKERLINE_API_URL=http://127.0.0.1:{base + 3}" in env

        # The API is a topology service like the others: started as `python -m speakerline.worker api`, healthy by
        # its ready file, on the stack's API port; the studio link's key (what `up` prints) signs in.
        cfg = dataclasses.replace(stack.StackConfig.load(root), services=True)
        api = next(c for c in stack.components(cfg) if c.name == "api")
        assert api.argv[1:] == ["-m", "speakerline.worker", "api"]
        stack.restart(cfg, "api", say=lambda _: None)
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", cfg.emulator_env()["FIRESTORE_EMULATOR_HOST"])
        from google.cloud import firestore

        key = stack_keys.ensure_studio_key(cfg, apikeys.FirestoreApiKeys(firestore.Client(project=cfg.project)))
        assert cfg.studio_link(key) == f"http://127.0.0.1:{base + 3}/#key={key}"
        me = urllib.request.Request(f"{cfg.api_url}/v1/me", headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(me, timeout=10) as response:
            assert json.load(response)["producer"] == stack_keys.LOCAL_PRODUCER

        # Every process each component started, Java children included.
        names = ("pubsub", "firestore", "gcs", "api")
        pgids = [int((root / "run" / f"{name}.pid").read_text()) for name in names]
        members = [p for pgid in pgids for p in _group_members(pgid)]
        assert any("java" in " ".join(p.cmdline()) for p in members), "expected the emulators' Java processes"

        os.killpg(pgids[2], signal.SIGKILL)  # GCS dies
        time.sleep(0.5)
        broken = _speakerline(root, "stack", "status")
        assert broken.returncode == 1 and "gcs" in broken.stdout and "DOWN" in broken.stdout
    finally:
        down = _speakerline(root, "stack", "down")
    assert down.returncode == 0
    time.sleep(0.5)
    survivors = [p for p in members if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], [p.cmdline() for p in survivors]
