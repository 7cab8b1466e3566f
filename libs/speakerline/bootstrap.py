"""One bootstrap for every service: `build_service(name, settings)` and the two entry points that run it.

A service is a package under services/ with `handlers.py` (plain functions `handle(event, context, deps)`) and
`wiring.py`, whose `wire(platform) -> Wiring` says which handler takes which subscription's events (the names in
infra/topology.yaml) and with which deps. Nothing else is service-specific: the same code runs every service

- as a pull worker: `python -m speakerline.worker <name>` (`run_worker`), or
- as the push HTTP function behind a Pub/Sub push subscription: functions-framework target `http_entrypoint` of
  `speakerline.push`, for the service named by `SPEAKERLINE_SERVICE` (`push_http_handler`).
"""

from __future__ import annotations

import importlib
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from speakerline import failpoints, logs, runtime, storage, telemetry
from speakerline.pubsub import EventPublisher, PubSubPublisher
from speakerline.settings import Settings


class ConfigurationError(RuntimeError):
    """A service cannot run with these settings (e.g. no webhook signing key): raised while wiring, so that a
    deployment fails at start-up, never job by job."""


class Platform:
    """The shared adapters a service's wiring builds its deps from; each is made on first use."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        publisher: EventPublisher | None = None,
        blobs: storage.BlobStore | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        if publisher is not None:
            self.__dict__["publisher"] = publisher
        if blobs is not None:
            self.__dict__["blobs"] = blobs

    @cached_property
    def publisher(self) -> EventPublisher:
        return PubSubPublisher(self.settings.project, self.settings.topology)

    @cached_property
    def blobs(self) -> storage.BlobStore:
        import google.cloud.storage as gcs

        return storage.GcsBlobStore(gcs.Client(project=self.settings.project))

    @property
    def source(self) -> str:
        """CloudEvent `source` of the events this service publishes."""
        return self.settings.source(self.name)

    @property
    def worker(self) -> str:
        """This process's name in events about its attempts (the host name unless configured)."""
        return self.settings.worker_name or socket.gethostname()

    def bucket(self, key: str) -> str:
        return self.settings.bucket(key)


@dataclass(frozen=True)
class Wiring:
    """What a service's `wire(platform)` returns."""

    #: handler name (the `handler` of its subscriptions in infra/topology.yaml) -> route
    routes: Mapping[str, runtime.Route]
    #: payload format of a non-CloudEvent subscription (e.g. "gcs-notification") -> decoder
    decoders: Mapping[str, runtime.Decoder] = field(default_factory=dict)
    warm_up: Callable[[], None] | None = None


class WiringModule(Protocol):
    def wire(self, platform: Platform) -> Wiring: ...


def wiring_module(name: str, settings: Settings) -> WiringModule:
    """`<module>.wiring` of the service, the module being the one infra/topology.yaml names for it."""
    service = settings.topology.services.get(name)
    if service is None:
        raise KeyError(f"no service {name!r} in the topology (known: {', '.join(settings.topology.services)})")
    module: WiringModule = importlib.import_module(f"{service.module}.wiring")
    return module


def build_service(
    name: str,
    settings: Settings,
    *,
    publisher: EventPublisher | None = None,
    blobs: storage.BlobStore | None = None,
) -> runtime.ServiceDef:
    """The service `name`, wired from `settings` (adapters may be given, e.g. by tests)."""
    platform = Platform(name, settings, publisher, blobs)
    wiring = wiring_module(name, settings).wire(platform)
    wanted = {sub.handler for sub in settings.topology.subscriptions_of(name)}
    missing = wanted - set(wiring.routes)
    if missing:
        raise ValueError(f"{name}: the topology routes subscriptions to handlers it does not wire: {sorted(missing)}")
    return runtime.ServiceDef(
        name=name,
        routes=wiring.routes,
        publisher=platform.publisher,
        topology=settings.topology,
        decoders=wiring.decoders,
        warm_up=wiring.warm_up,
    )


def observe(name: str, settings: Settings) -> None:
    """Logs (structlog JSON lines) and OpenTelemetry (traces, metrics) of the process running service `name`."""
    logs.configure(name, settings.log_level, project=settings.project)
    telemetry.configure(
        name,
        exporters=settings.telemetry,
        directory=settings.telemetry_dir,
        project=settings.project,
        instance=settings.worker_name or socket.gethostname(),
    )


def _require_project(settings: Settings) -> None:
    if not settings.project:
        raise SystemExit("GOOGLE_CLOUD_PROJECT is not set")


def run_worker(name: str, settings: Settings | None = None) -> None:
    """Run `name` as a pull worker until SIGTERM/SIGINT."""
    settings = settings or Settings()
    observe(name, settings)
    failpoints.configure(settings.failpoints_file)
    _require_project(settings)
    try:
        service = build_service(name, settings)
    except ConfigurationError as exc:
        logs.get_logger().error("cannot start: configuration error", error=str(exc))
        raise SystemExit(f"{name}: {exc}") from exc
    if service.warm_up is not None:
        service.warm_up()
    runtime.run_pull(service, settings.project, settings.ready_file, settings.inflight_dir)


def run_envelope(name: str, envelope_file: Path, settings: Settings | None = None) -> int:
    """Handle one Pub/Sub push envelope read from a file, exactly as the push function would, and exit: what a
    Vertex AI custom job runs (it gets its job's event this way rather than over HTTP)."""
    import json

    settings = settings or Settings()
    observe(name, settings)
    _require_project(settings)
    envelope = json.loads(envelope_file.read_text())
    try:
        runtime.handle_push_envelope(build_service(name, settings), envelope)
    except runtime.RedeliveryRequested:
        return 1
    return 0


def push_http_handler(settings: Settings | None = None, *, eager: bool = False) -> Callable[[Any], tuple[str, int]]:
    """The body of the push HTTP function: the service named by `settings.service`, built on the first request,
    or at once with `eager` (the deployed function: a configuration error then stops the container at start-up,
    so a bad revision never takes traffic). It reads the raw push envelope, so the delivery attempt reaches the
    handler's context; a non-2xx answer makes Pub/Sub redeliver with backoff."""
    built: list[runtime.ServiceDef] = []
    if eager:
        current = settings or Settings()
        if current.service:
            observe(current.service, current)
            built.append(build_service(current.service, current))

    def handle(request: Any) -> tuple[str, int]:
        envelope = request.get_json(silent=True)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
            return "expected a Pub/Sub push request body", 400
        if not built:
            current = settings or Settings()
            if not current.service:
                return "SPEAKERLINE_SERVICE is not set", 500
            observe(current.service, current)
            built.append(build_service(current.service, current))
        try:
            runtime.handle_push_envelope(built[0], envelope, str(request.path))
        except runtime.RedeliveryRequested as exc:
            return str(exc), 500
        return "", 204

    return handle
