"""One bootstrap for every service: `build_service(name, settings)`, and `start`, the one start-up sequence of every
entry point.

A service is a package under services/ with `handlers.py` (plain functions `on_<event>(event, context, deps)`) and
`wiring.py`, whose `wire(platform) -> Wiring` says which handler takes which subscription's events (the names in
infra/topology.yaml), with which deps, and, for a service whose topology `entrypoint` is `http` (the API), which
ASGI app it serves. Nothing else is service-specific: `start` runs every service through the same sequence
(settings, project check, telemetry, failpoints, wiring, warm-up) whichever way it runs:

- `pull`: a pull worker, `python -m speakerline.worker <name>` (`run_worker`);
- `push`: the push HTTP function behind a Pub/Sub push subscription, functions-framework target `http_entrypoint`
  of `speakerline.push`, for the service named by `SPEAKERLINE_SERVICE` (`push_http_handler`);
- `envelope`: one push envelope from a file, what a Vertex AI custom job runs (`run_envelope`);
- `http`: the service's own ASGI app under uvicorn, `python -m speakerline.worker api` (`run_http`, `http_app`).
"""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict, Unpack

from speakerline import failpoints, logs, runtime, storage, telemetry
from speakerline.pubsub import EventPublisher, PubSubPublisher
from speakerline.secrets import SecretManagerVersions, SecretVersions
from speakerline.settings import Settings
from speakerline.vertexjobs import VertexJobs, VertexJobService

#: How a process runs its service (see the module's docstring).
Mode = Literal["pull", "push", "envelope", "http"]
#: An ASGI application (the `http` entry point serves one); typed loosely so that the runtime needs no web framework.
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


class ConfigurationError(RuntimeError):
    """A service cannot run with these settings (e.g. no webhook signing key): raised while wiring, so that a
    deployment fails at start-up, never job by job."""


class Adapters(TypedDict, total=False):
    """Adapters a `Platform` is given instead of making them (tests pass doubles here, and only here)."""

    publisher: EventPublisher
    blobs: storage.BlobStore
    #: a google.cloud.storage.Client: blobs, and the API's signed URLs
    storage_client: Any
    #: a google.cloud.firestore.Client
    firestore: Any
    secrets: SecretVersions
    #: Vertex AI's job service (diarization's dispatch to a GPU custom job)
    vertex_jobs: VertexJobs


class Platform:
    """Every adapter a service's wiring builds its deps from, and every value derived from the settings; each
    adapter is made on first use (so that wiring needs no credentials until a client is really used) unless it was
    given (`Adapters`)."""

    def __init__(self, name: str, settings: Settings, **adapters: Unpack[Adapters]) -> None:
        self.name = name
        self.settings = settings
        for key, adapter in adapters.items():
            if key not in Adapters.__annotations__:
                raise TypeError(f"Platform has no adapter {key!r}")
            self.__dict__[key] = adapter  # fills the cached_property of the same name

    @cached_property
    def publisher(self) -> EventPublisher:
        return PubSubPublisher(self.settings.project, self.settings.topology)

    @cached_property
    def storage_client(self) -> Any:
        import google.cloud.storage as gcs

        return gcs.Client(project=self.settings.project)

    @cached_property
    def blobs(self) -> storage.BlobStore:
        return storage.GcsBlobStore(self.storage_client)

    @cached_property
    def firestore(self) -> Any:
        from google.cloud import firestore

        return firestore.Client(project=self.settings.project)

    @cached_property
    def secrets(self) -> SecretVersions:
        return SecretManagerVersions()

    @cached_property
    def vertex_jobs(self) -> VertexJobs:
        settings = self.settings
        return VertexJobService(settings.vertex_api_endpoint or f"{settings.vertex_region}-aiplatform.googleapis.com")

    def secret(self, name: str) -> str | None:
        """A secret setting: its value when set, else the file its `<name>_file` field names (if it has one), else
        the Secret Manager version its `<name>_secret` field names (a rotation is then a new version, not a
        redeploy), else None."""
        value: str | None = getattr(self.settings, name)
        if value:
            return value
        path: Path | None = getattr(self.settings, f"{name}_file", None)
        if path is not None:
            return path.read_text().strip() or None
        version: str | None = getattr(self.settings, f"{name}_secret", None)
        return self.secrets.access(version) if version else None

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
    #: the ASGI app of a service whose topology entrypoint is `http` (made once, by the `http` entry point)
    app: Callable[[], ASGIApp] | None = None


class WiringModule(Protocol):
    def wire(self, platform: Platform) -> Wiring: ...


def wiring_module(name: str, settings: Settings) -> WiringModule:
    """`<module>.wiring` of the service, the module being the one infra/topology.yaml names for it."""
    service = settings.topology.services.get(name)
    if service is None:
        raise KeyError(f"no service {name!r} in the topology (known: {', '.join(settings.topology.services)})")
    module: WiringModule = importlib.import_module(f"{service.module}.wiring")
    return module


@dataclass(frozen=True)
class Built:
    """A service wired from its settings: what the runtime runs (`service`) and, for an `http` service, its app."""

    service: runtime.ServiceDef
    app: Callable[[], ASGIApp] | None
    platform: Platform


def build(name: str, settings: Settings, **adapters: Unpack[Adapters]) -> Built:
    """The service `name`, wired from `settings` (adapters may be given, e.g. by tests)."""
    platform = Platform(name, settings, **adapters)
    wiring = wiring_module(name, settings).wire(platform)
    wanted = {sub.handler for sub in settings.topology.subscriptions_of(name)}
    missing = wanted - set(wiring.routes)
    if missing:
        raise ValueError(f"{name}: the topology routes subscriptions to handlers it does not wire: {sorted(missing)}")
    entrypoint = settings.topology.services[name].entrypoint
    if (wiring.app is not None) != (entrypoint == "http"):
        raise ValueError(
            f"{name}: the topology's entrypoint is {entrypoint!r}, so it must wire an app iff that is http"
        )
    service = runtime.ServiceDef(
        name=name,
        routes=wiring.routes,
        publisher=platform.publisher,
        topology=settings.topology,
        decoders=wiring.decoders,
        warm_up=wiring.warm_up,
    )
    return Built(service, wiring.app, platform)


def build_service(name: str, settings: Settings, **adapters: Unpack[Adapters]) -> runtime.ServiceDef:
    """What the runtime runs of the service `name` (see `build`)."""
    return build(name, settings, **adapters).service


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


def start(name: str, mode: Mode, settings: Settings | None = None, **adapters: Unpack[Adapters]) -> Built:
    """The one start-up sequence of every service in every mode: settings (from the environment unless given),
    project check, telemetry, failpoints, wiring, warm-up. A configuration error is raised (`ConfigurationError`)
    before the service takes any work."""
    settings = settings or Settings()
    if not settings.project:
        raise ConfigurationError("GOOGLE_CLOUD_PROJECT is not set")
    known = settings.topology.services.get(name)
    if known is not None and (known.entrypoint == "http") != (mode == "http"):
        raise ConfigurationError(f"{name} runs as {known.entrypoint!r} (infra/topology.yaml), not as {mode!r}")
    observe(name, settings)
    failpoints.configure(settings.failpoints_file)
    built = build(name, settings, **adapters)
    if built.service.warm_up is not None:
        built.service.warm_up()
    logs.get_logger().info("started", service=name, mode=mode)
    return built


def _start_or_exit(name: str, mode: Mode, settings: Settings | None) -> Built:
    """`start` for a process's entry point: a configuration error stops the process with its reason."""
    try:
        return start(name, mode, settings)
    except ConfigurationError as exc:
        logs.get_logger().error("cannot start: configuration error", service=name, error=str(exc))
        raise SystemExit(f"{name}: {exc}") from exc


def run(name: str, settings: Settings | None = None) -> None:
    """Run `name` the way its topology entry says, until SIGTERM/SIGINT: a pull worker, or its HTTP app."""
    settings = settings or Settings()
    service = settings.topology.services.get(name)
    if service is not None and service.entrypoint == "http":
        run_http(name, settings)
    else:
        run_worker(name, settings)


def run_worker(name: str, settings: Settings | None = None) -> None:
    """Run `name` as a pull worker until SIGTERM/SIGINT."""
    settings = settings or Settings()
    built = _start_or_exit(name, "pull", settings)
    runtime.run_pull(built.service, settings.project, settings.ready_file, settings.inflight_dir)


def run_envelope(name: str, envelope_file: Path, settings: Settings | None = None) -> int:
    """Handle one Pub/Sub push envelope read from a file, exactly as the push function would, and exit: what a
    Vertex AI custom job runs (it gets its job's event this way rather than over HTTP)."""
    import json

    built = _start_or_exit(name, "envelope", settings)
    envelope = json.loads(envelope_file.read_text())
    try:
        runtime.handle_push_envelope(built.service, envelope)
    except runtime.RedeliveryRequested:
        return 1
    return 0


def http_app(name: str, settings: Settings | None = None, **adapters: Unpack[Adapters]) -> ASGIApp:
    """The ASGI app of the `http` service `name`, started (`start`)."""
    built = start(name, "http", settings, **adapters)
    assert built.app is not None  # `build` checked it against the topology
    return built.app()


def run_http(name: str, settings: Settings | None = None) -> None:
    """Serve the `http` service `name` with uvicorn on `settings.http_host:http_port` until SIGTERM/SIGINT; the
    ready file is written once the socket listens."""
    import uvicorn

    settings = settings or Settings()
    built = _start_or_exit(name, "http", settings)
    assert built.app is not None  # `build` checked it against the topology
    app = built.app()
    ready_file = settings.ready_file

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if ready_file is not None and not self.should_exit:
                ready_file.parent.mkdir(parents=True, exist_ok=True)
                ready_file.write_text(str(os.getpid()))

    # access_log off: the app logs every request itself, with its producer and job
    Server(uvicorn.Config(app, host=settings.http_host, port=settings.http_port, access_log=False)).run()
    telemetry.shutdown()


def push_http_handler(settings: Settings | None = None, *, eager: bool = False) -> Callable[[Any], tuple[str, int]]:
    """The body of the push HTTP function: the service named by `settings.service`, started (`start`) on the
    first request, or at once with `eager` (the deployed function: a configuration error then stops the container
    at start-up, so a bad revision never takes traffic). It reads the raw push envelope, so the delivery attempt
    reaches the handler's context; a non-2xx answer makes Pub/Sub redeliver with backoff."""
    built: list[Built] = []
    if eager:
        current = settings or Settings()
        if current.service:
            built.append(_start_or_exit(current.service, "push", current))

    def handle(request: Any) -> tuple[str, int]:
        envelope = request.get_json(silent=True)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
            return "expected a Pub/Sub push request body", 400
        if not built:
            current = settings or Settings()
            if not current.service:
                return "SPEAKERLINE_SERVICE is not set", 500
            try:
                built.append(start(current.service, "push", current))
            except ConfigurationError as exc:
                return f"{current.service}: {exc}", 500
        try:
            runtime.handle_push_envelope(built[0].service, envelope, str(request.path))
        except runtime.RedeliveryRequested as exc:
            return str(exc), 500
        return "", 204

    return handle
