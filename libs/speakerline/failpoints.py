"""Named fault-injection points for the local stack's fault tests (the failpoint idea of FreeBSD's fail(9),
etcd's gofail and TiKV's fail-rs): a test can stop a service exactly inside a handler, say inside the
projector's transaction, then SIGKILL it there, instead of hoping a timed kill lands in a few milliseconds.

Off unless `SPEAKERLINE_FAILPOINTS_FILE` is set (only the local stack's tests set it; never the cloud). Then
`reached(name, job_id)` looks the point up in that JSON file, re-read whenever it changes:

    {"projector.apply": {"job_id": "job_1234", "action": "pause"}}

- `pause`: record the hit and block while the point stays armed for that job (the test kills the process
  meanwhile, or disarms the point to let it go on);
- `raise`: raise `FailpointError` while armed: a handler that always fails, i.e. a poison message.

Each hit is appended to `<file>.hits` as a JSON line `{name, job_id, pid, time}`, which the tests watch.
Points are named `<service>.<where>`; the list is `POINTS`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

POINTS = (
    "ingest.normalise",  # after the upload was probed, before it is normalised
    "diarization.engine",  # while the engine runs (after its first progress report)
    "postprocess.outputs",  # output.json, RTTM and WebVTT written, job.completed not yet published
    "notification.between_channels",  # one channel notified, the next not yet
    "projector.apply",  # inside the projector's read-modify-write, between its read and its write
)
POLL_S = 0.2

_lock = threading.Lock()
_state: dict[str, Any] = {"file": None, "mtime": None, "points": {}}


class FailpointError(RuntimeError):
    """Raised by an armed `raise` point."""


def configure(path: Path | None) -> None:
    """Turn failpoints on (reading `path`) or off (None). Called once by the bootstrap."""
    with _lock:
        _state.update(file=path, mtime=None, points={})


def _points() -> dict[str, Any]:
    path: Path | None = _state["file"]
    if path is None:
        return {}
    with _lock:
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            _state.update(mtime=None, points={})
            return {}
        if mtime != _state["mtime"]:
            try:
                points = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):  # half-written: keep what was read before, look again next time
                return dict(_state["points"])
            _state.update(mtime=mtime, points=points if isinstance(points, dict) else {})
        return dict(_state["points"])


def _armed(name: str, job_id: str) -> str | None:
    spec = _points().get(name)
    if isinstance(spec, dict) and spec.get("job_id") == job_id:
        return str(spec.get("action", "pause"))
    return None


def _record_hit(name: str, job_id: str) -> None:
    path: Path = _state["file"]
    line = json.dumps({"name": name, "job_id": job_id, "pid": os.getpid(), "time": time.time()})
    with _lock, path.with_name(path.name + ".hits").open("a") as hits:
        hits.write(line + "\n")


def reached(name: str, job_id: str) -> None:
    """A handler passes the point `name` for `job_id`: nothing happens unless a test armed it."""
    if _state["file"] is None:
        return
    action = _armed(name, job_id)
    if action is None:
        return
    _record_hit(name, job_id)
    if action == "raise":
        raise FailpointError(f"failpoint {name} armed for job {job_id}")
    while _armed(name, job_id) is not None:
        time.sleep(POLL_S)
