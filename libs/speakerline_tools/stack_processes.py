"""The local stack's processes: each component in a process group of its own, its pid in `<root>/run/<name>.pid`,
started, checked and stopped (the whole group: the gcloud emulators start Java children)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from speakerline_tools.stack import Component, StackConfig


def _ready(ready_file: Path) -> Callable[[], bool]:
    def check() -> bool:
        if not ready_file.exists():
            return False
        try:
            return _alive(int(ready_file.read_text().strip()))
        except ValueError:
            return False

    return check


def _pid_file(cfg: StackConfig, name: str) -> Path:
    return cfg.run / f"{name}.pid"


def _read_pid(cfg: StackConfig, name: str) -> int | None:
    try:
        return int(_pid_file(cfg, name).read_text().strip())
    except (OSError, ValueError):
        return None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_alive(pgid: int) -> bool:
    _reap(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start(cfg: StackConfig, comp: Component) -> int:
    cfg.logs.mkdir(parents=True, exist_ok=True)
    cfg.run.mkdir(parents=True, exist_ok=True)
    log = (cfg.logs / f"{comp.name}.log").open("ab")
    proc = subprocess.Popen(
        comp.argv,
        env=comp.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: `down` stops the Java children too
    )
    log.close()
    _pid_file(cfg, comp.name).write_text(str(proc.pid))
    return proc.pid


def _stop_group(pgid: int, timeout_s: float = 15.0) -> None:
    _stop_groups([pgid], timeout_s)


def _stop_groups(pgids: list[int], timeout_s: float = 15.0) -> None:
    """SIGTERM to every group at once, SIGKILL to those still there after `timeout_s`: components stopped side by
    side, not one drain after another."""
    alive = list(pgids)
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        for pgid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while True:
            alive = [pgid for pgid in alive if _group_alive(pgid)]
            if not alive or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if not alive:
            return
