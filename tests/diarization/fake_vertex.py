"""A tiny fake of the Vertex AI REST API (custom jobs only), on 127.0.0.1, for the GPU fallback tests.

The diarization worker reaches it through `SPEAKERLINE_VERTEX_API_ENDPOINT=http://127.0.0.1:PORT` (REST, no
credentials). What it does with each create call is the test's choice (`behaviour(request) -> Behaviour`):
refuse it as Google APIs do (HTTP 429 `RESOURCE_EXHAUSTED`), or create a job that stays in a state
(`JOB_STATE_PENDING`: it never starts). Every call is recorded.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from speakerline import events

#: the quota error Vertex AI answers when no GPU of the kind is left in the region
QUOTA_ERROR = {
    "error": {
        "code": 429,
        "message": "The following quota metrics exceed quota limits: "
        "aiplatform.googleapis.com/custom_model_training_nvidia_l4_gpus",
        "status": "RESOURCE_EXHAUSTED",
    }
}


@dataclass(frozen=True)
class Behaviour:
    """`refuse`: answer the create call with this status and body; else create a job that stays in `state`."""

    refuse: tuple[int, dict[str, Any]] | None = None
    state: str = "JOB_STATE_PENDING"


REFUSE = Behaviour(refuse=(429, QUOTA_ERROR))
PENDING = Behaviour(state="JOB_STATE_PENDING")
RUNNING = Behaviour(state="JOB_STATE_RUNNING")


def dispatched_event(custom_job: dict[str, Any]) -> events.AudioIngested:
    """The event a created custom job would handle: the push envelope in its environment (REST field names)."""
    (pool,) = custom_job["jobSpec"]["workerPoolSpecs"]
    env = {e["name"]: e["value"] for e in pool["containerSpec"]["env"]}
    message = json.loads(env["SPEAKERLINE_ENVELOPE_JSON"])["message"]
    event = events.parse_pubsub(base64.b64decode(message["data"]), message["attributes"])
    assert isinstance(event, events.AudioIngested)
    return event


@dataclass
class FakeVertex:
    behaviour: Callable[[dict[str, Any]], Behaviour]
    url: str = ""
    creates: list[dict[str, Any]] = field(default_factory=list)  # the CustomJob bodies, refused ones too
    gets: list[str] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def handle(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        path = path.split("?", 1)[0].removeprefix("/v1/")
        with self.lock:
            if method == "POST" and path.endswith("/customJobs"):
                self.creates.append(body)
                behaviour = self.behaviour(body)
                if behaviour.refuse is not None:
                    return behaviour.refuse
                name = f"{path}/{next(self._ids)}"
                self.jobs[name] = {**body, "name": name, "state": behaviour.state}
                return 200, self.jobs[name]
            if method == "POST" and path.endswith(":cancel"):
                name = path.removesuffix(":cancel")
                self.cancels.append(name)
                if name not in self.jobs:
                    return 404, {"error": {"code": 404, "message": f"{name} not found", "status": "NOT_FOUND"}}
                self.jobs[name]["state"] = "JOB_STATE_CANCELLING"
                return 200, {}
            if method == "GET" and path in self.jobs:
                self.gets.append(path)
                return 200, self.jobs[path]
        return 404, {"error": {"code": 404, "message": f"{method} {path}: not found", "status": "NOT_FOUND"}}


@contextmanager
def serve(behaviour: Callable[[dict[str, Any]], Behaviour]) -> Iterator[FakeVertex]:
    """A FakeVertex listening on a free port of 127.0.0.1 (its `url`) until the block ends."""
    fake = FakeVertex(behaviour)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            status, answer = fake.handle(method, self.path, json.loads(raw) if raw else {})
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-vertex", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
