"""Process bootstrap shared by every service: settings from the environment, logging, and the two entry styles.

A service module builds its `ServiceDef` once (`lazy`) and exposes both:
- `main()` → streaming-pull worker (`python -m speakerline_<name>`), and
- `entrypoint(cloud_event)` → functions-framework CloudEvent function for Pub/Sub push / Eventarc.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from speakerline import logs, runtime
from speakerline import topology as topo
from speakerline.pubsub import PubSubPublisher

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    project: str
    topology: topo.Topology
    source_prefix: str = "//speakerline/services"

    @classmethod
    def from_env(cls) -> Settings:
        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
        if not project:
            raise RuntimeError("GOOGLE_CLOUD_PROJECT is not set")
        return cls(project=project, topology=topo.load())

    def source(self, service: str) -> str:
        """CloudEvent `source` of events this service publishes."""
        return f"{self.source_prefix}/{service}"

    def bucket(self, key: str) -> str:
        # Bucket names are global: the cloud deployment prefixes them with the project id.
        return os.environ.get("SPEAKERLINE_BUCKET_PREFIX", "") + self.topology.bucket(key)


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def secret(name: str, *fallbacks: str) -> str | None:
    """A secret's value: from env `name` (or a fallback env) when set, else from Secret Manager when env
    `<name>_SECRET` holds a secret version resource name (`projects/.../secrets/.../versions/latest`), as the
    cloud deployment configures it: a rotation is then a new version, not a redeploy."""
    for env in (name, *fallbacks):
        if os.environ.get(env):
            return os.environ[env]
    version = os.environ.get(f"{name}_SECRET")
    if not version:
        return None
    from google.cloud import secretmanager

    response = secretmanager.SecretManagerServiceClient().access_secret_version(name=version)
    value: str = response.payload.data.decode("utf-8")
    return value


def publisher(settings: Settings) -> PubSubPublisher:
    return PubSubPublisher(settings.project, settings.topology)


def lazy(build: Callable[[], T]) -> Callable[[], T]:
    """Build once per process, on first use (functions-framework imports modules before serving)."""
    return cache(build)


def run_worker(name: str, build: Callable[[], runtime.ServiceDef]) -> None:
    logs.configure(name)
    service = build()
    ready = os.environ.get("SPEAKERLINE_READY_FILE")
    runtime.run_pull(service, Settings.from_env().project, Path(ready) if ready else None)


def push_entrypoint(name: str, build: Callable[[], runtime.ServiceDef]) -> Callable[[Any], None]:
    """A functions-framework CloudEvent function body for `name` (Eventarc, or push via CloudEvent)."""

    def entrypoint(cloud_event: Any) -> None:
        _configure_logs_once(name)
        runtime.handle_push(build(), cloud_event)

    return entrypoint


def push_http_entrypoint(name: str, build: Callable[[], runtime.ServiceDef]) -> Callable[[Any], tuple[str, int]]:
    """A functions-framework HTTP function body for `name` behind a Pub/Sub push subscription: it reads the raw
    push envelope, so the delivery attempt reaches the last-attempt hook. A non-2xx answer makes Pub/Sub
    redeliver with backoff."""

    # functions-framework registers the signature type under the function's __name__, which must be the
    # module attribute that `--target` names.
    def http_entrypoint(request: Any) -> tuple[str, int]:
        _configure_logs_once(name)
        envelope = request.get_json(silent=True)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
            return "expected a Pub/Sub push request body", 400
        try:
            runtime.handle_push_envelope(build(), envelope, str(request.path))
        except runtime.RedeliveryRequested as exc:
            return str(exc), 500
        return "", 204

    return http_entrypoint


@cache
def _configure_logs_once(name: str) -> None:
    logs.configure(name)
