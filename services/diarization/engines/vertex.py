"""Dispatch one diarization job to a Vertex AI CustomJob on a GPU worker.

Nothing is diarized in-process: :func:`build_custom_job_request` (pure, unit-tested) builds a
``CreateCustomJobRequest`` for one worker pool (``g2-standard-8`` + 1x ``NVIDIA_L4`` by
default) running the same worker image with ``python -m speakerline.worker diarization
--envelope FILE``, and :class:`VertexAIDispatcher` submits it through an injected client
(``google.cloud.aiplatform_v1.JobServiceClient`` by default, imported lazily).

The event travels as the Pub/Sub push envelope the push function would receive for the
diarization subscription (:func:`push_envelope`: binary-mode CloudEvent, first delivery), so the
job handles it exactly as a push would. The envelope JSON travels in the job's environment
(``SPEAKERLINE_ENVELOPE_JSON``); the container command writes it to a file and execs the
worker on it, so no staging bucket is needed and nothing is interpolated into a shell string.

Secrets never travel in the request: the worker receives the *resource name* of the
Hugging Face token secret (``SPEAKERLINE_HF_TOKEN_SECRET``) and reads it from Secret Manager
itself (see :func:`.select.resolve_hf_token`).

When the GPU path is down the job must still complete: :meth:`VertexAIDispatcher.submit` raises
:class:`.base.DispatchUnavailable` (``gpu_dispatch_refused``) when the create call fails (quota,
permissions, transport or API errors), and :meth:`VertexAIDispatcher.wait_started` raises it
(``gpu_start_timeout``, after cancelling the job; ``gpu_start_failed`` when the job ended before it
ever ran) when the job does not reach ``JOB_STATE_RUNNING`` within ``start_timeout_s``. The
dispatching worker then runs the job on its own CPU engine. A job that fails after it started is
not the dispatcher's business: the job's own handler reports it.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from speakerline import events
from speakerline.settings import DEFAULT_PYANNOTE_MODEL, Settings, or_default

from .base import DispatchUnavailable

__all__ = [
    "DEFAULT_START_TIMEOUT_S",
    "ENV_ENGINE",
    "ENV_HF_TOKEN_SECRET",
    "ENV_PYANNOTE_MODEL",
    "GPU_DISPATCH_REFUSED",
    "GPU_START_FAILED",
    "GPU_START_TIMEOUT",
    "JobServiceClient",
    "VertexAIDispatcher",
    "VertexConfig",
    "build_custom_job_request",
    "push_envelope",
    "sanitize_label",
]

log = structlog.get_logger()

ENV_ENGINE = "SPEAKERLINE_ENGINE"
ENV_PYANNOTE_MODEL = "SPEAKERLINE_PYANNOTE_MODEL"
ENV_HF_TOKEN_SECRET = "SPEAKERLINE_HF_TOKEN_SECRET"
ENV_DEVICE = "SPEAKERLINE_DIARIZATION_DEVICE"
ENV_ENVELOPE_JSON = "SPEAKERLINE_ENVELOPE_JSON"
ENV_VERTEX_DISPATCH = "SPEAKERLINE_VERTEX_DISPATCH"
ENVELOPE_FILE = "/tmp/speakerline-envelope.json"
#: the job's entry: write the push envelope from the environment to a file, then handle it and exit
JOB_COMMAND = [
    "/bin/sh",
    "-c",
    f"printf '%s' \"${ENV_ENVELOPE_JSON}\" > {ENVELOPE_FILE} && "
    f"exec python -m speakerline.worker diarization --envelope {ENVELOPE_FILE}",
]
#: worker environment (name -> `Settings` field) copied from the dispatching process when set there
PASSTHROUGH_ENV: Mapping[str, str] = {
    "GOOGLE_CLOUD_PROJECT": "project",
    "SPEAKERLINE_BUCKET_PREFIX": "bucket_prefix",
    "SPEAKERLINE_TOPOLOGY": "topology_file",
    "SPEAKERLINE_LOG_LEVEL": "log_level",
    "SPEAKERLINE_MODEL_CACHE_DIR": "model_cache_dir",
}

#: env names that would carry a secret value; refused in ``VertexConfig.env``
_SECRET_ENV_NAMES = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "SPEAKERLINE_HF_TOKEN"})
_SECRET_RESOURCE = re.compile(r"^projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?$")
_LABEL_INVALID = re.compile(r"[^a-z0-9_-]")

#: why the worker ran a job itself (the engine's ``fallback.reason`` in the events; the schemas list them)
GPU_DISPATCH_REFUSED = "gpu_dispatch_refused"
GPU_START_TIMEOUT = "gpu_start_timeout"
GPU_START_FAILED = "gpu_start_failed"
#: a custom job usually starts within minutes (machine provisioning, image pull); past this the GPU path is
#: taken to be down (no capacity in the region, a stuck quota) and the worker runs the job itself
DEFAULT_START_TIMEOUT_S = 900.0
DEFAULT_POLL_S = 5.0
#: the client's own default is no timeout at all: a hung call must not hold the job forever
CALL_TIMEOUT_S = 60.0
#: the job ran (or is running): from here on it reports itself
_STARTED_STATES = frozenset({"JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"})
#: the job is over (or going) without having run, unless its ``start_time`` says otherwise
_ENDED_STATES = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})


@dataclass(frozen=True)
class VertexConfig:
    """Where and how to run diarization jobs on Vertex AI."""

    project: str
    region: str
    image_uri: str
    service_account: str | None = None
    machine_type: str = "g2-standard-8"
    accelerator_type: str = "NVIDIA_L4"
    accelerator_count: int = 1
    boot_disk_size_gb: int = 100
    timeout_s: int = 3600
    #: engine the GPU job runs: ``auto`` = pyannote when loadable, else embedded (on the GPU)
    worker_engine: str = "auto"
    pyannote_model: str = DEFAULT_PYANNOTE_MODEL
    #: Secret Manager resource name, e.g. ``projects/p/secrets/hf-token/versions/latest``
    hf_token_secret: str | None = None
    #: extra non-secret environment for the worker (engine config, log level, ...)
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    network: str | None = None
    display_name_prefix: str = "speakerline-diarize"
    #: API endpoint; None: ``<region>-aiplatform.googleapis.com``. ``http://...``: a local fake of the REST API,
    #: called without credentials (tests only)
    api_endpoint: str | None = None
    #: how long a created job may take to reach JOB_STATE_RUNNING before the worker runs the job itself
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S
    #: time between two looks at the job's state while waiting for it to start
    poll_s: float = DEFAULT_POLL_S

    @classmethod
    def from_settings(cls, settings: Settings) -> VertexConfig:
        """Settings as the Terraform deployment passes them (``SPEAKERLINE_VERTEX_*``)."""
        # only what the dispatching process was given (in its environment or explicitly), not the defaults
        given = settings.model_fields_set
        passthrough = {name: getattr(settings, key) for name, key in PASSTHROUGH_ENV.items() if key in given}
        return cls(
            project=settings.project,
            region=settings.vertex_region,
            image_uri=settings.vertex_image,
            service_account=settings.vertex_service_account or None,
            machine_type=settings.vertex_machine_type,
            accelerator_type=settings.vertex_accelerator,
            accelerator_count=settings.vertex_accelerator_count,
            worker_engine=settings.vertex_worker_engine,
            pyannote_model=settings.pyannote_model,
            hf_token_secret=settings.hf_token_secret or None,
            env={name: str(value) for name, value in passthrough.items() if value},
            api_endpoint=settings.vertex_api_endpoint or None,
            start_timeout_s=or_default(settings.gpu_start_timeout_s, DEFAULT_START_TIMEOUT_S),
        )

    @property
    def endpoint(self) -> str:
        return self.api_endpoint or f"{self.region}-aiplatform.googleapis.com"

    def __post_init__(self) -> None:
        for name in ("project", "region", "image_uri"):
            if not getattr(self, name):
                raise ValueError(f"VertexConfig.{name} is required (SPEAKERLINE_VERTEX_* / GOOGLE_CLOUD_PROJECT)")
        if self.accelerator_count < 0:
            raise ValueError("accelerator_count must be >= 0")
        if self.start_timeout_s <= 0 or self.poll_s <= 0:
            raise ValueError("start_timeout_s and poll_s must be > 0")
        leaked = _SECRET_ENV_NAMES & set(self.env)
        if leaked:
            raise ValueError(
                f"secret values must not be passed as env ({sorted(leaked)}); "
                "set hf_token_secret to the Secret Manager resource name instead"
            )
        if self.hf_token_secret is not None and not _SECRET_RESOURCE.match(self.hf_token_secret):
            raise ValueError(
                "hf_token_secret must be a Secret Manager resource name "
                "(projects/<p>/secrets/<name>[/versions/<v>]), not a token value"
            )


def sanitize_label(value: str) -> str:
    """Make a GCP label value: lowercase letters, digits, ``-`` and ``_``, at most 63 chars."""
    return _LABEL_INVALID.sub("-", value.lower())[:63]


def push_envelope(event: events.Event[Any], subscription: str) -> dict[str, Any]:
    """The Pub/Sub push request body that delivers ``event`` through ``subscription`` for the first time:
    what ``python -m speakerline.worker <service> --envelope FILE`` handles (validated: an invalid event is
    never dispatched)."""
    data, attributes = events.to_pubsub(event)
    return {
        "message": {"data": base64.b64encode(data).decode(), "attributes": attributes, "messageId": event.id},
        "subscription": subscription,
        "deliveryAttempt": 1,
    }


def build_custom_job_request(
    config: VertexConfig, *, job_id: str, envelope_json: str, event_id: str | None = None
) -> dict[str, Any]:
    """Build a ``CreateCustomJobRequest`` (as a dict with proto field names) for one job.

    ``envelope_json`` is the push envelope (:func:`push_envelope`) of the event the job processes.
    The dict can be passed as ``request=`` to ``JobServiceClient.create_custom_job`` or to
    ``aiplatform_v1.CreateCustomJobRequest(...)``.
    """
    if not job_id:
        raise ValueError("job_id is required")
    json.loads(envelope_json)  # must be JSON; raises ValueError otherwise
    env: dict[str, str] = dict(config.env)
    env.update(
        {
            ENV_ENGINE: config.worker_engine,
            ENV_VERTEX_DISPATCH: "false",  # the job diarizes; it must never dispatch again
            ENV_PYANNOTE_MODEL: config.pyannote_model,
            ENV_DEVICE: "cuda" if config.accelerator_count > 0 else "cpu",
            "PYANNOTE_METRICS_ENABLED": "false",
            ENV_ENVELOPE_JSON: envelope_json,
        }
    )
    if config.hf_token_secret:
        env[ENV_HF_TOKEN_SECRET] = config.hf_token_secret

    machine_spec: dict[str, Any] = {"machine_type": config.machine_type}
    if config.accelerator_count > 0:
        machine_spec["accelerator_type"] = config.accelerator_type
        machine_spec["accelerator_count"] = config.accelerator_count

    labels = {sanitize_label(k): sanitize_label(v) for k, v in config.labels.items()}
    labels.update({"app": "speakerline", "component": "diarization", "job-id": sanitize_label(job_id)})
    if event_id:
        labels["event-id"] = sanitize_label(event_id)

    job_spec: dict[str, Any] = {
        "worker_pool_specs": [
            {
                "machine_spec": machine_spec,
                "replica_count": 1,
                "disk_spec": {
                    "boot_disk_type": "pd-ssd",
                    "boot_disk_size_gb": config.boot_disk_size_gb,
                },
                "container_spec": {
                    "image_uri": config.image_uri,
                    "command": list(JOB_COMMAND),
                    "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
                },
            }
        ],
        "scheduling": {
            "timeout": {"seconds": config.timeout_s},
            "restart_job_on_worker_restart": False,
        },
    }
    if config.service_account:
        job_spec["service_account"] = config.service_account
    if config.network:
        job_spec["network"] = config.network

    return {
        "parent": f"projects/{config.project}/locations/{config.region}",
        "custom_job": {
            "display_name": f"{config.display_name_prefix}-{job_id}"[:128],
            "labels": labels,
            "job_spec": job_spec,
        },
    }


class JobServiceClient(Protocol):
    """The methods we use of ``aiplatform_v1.JobServiceClient``."""

    def create_custom_job(self, *, request: Any, timeout: float) -> Any: ...

    def get_custom_job(self, *, name: str, timeout: float) -> Any: ...

    def cancel_custom_job(self, *, name: str, timeout: float) -> Any: ...


def default_job_client(config: VertexConfig) -> JobServiceClient:
    """The Vertex AI job client for ``config.endpoint``: gRPC with the process's credentials, or, for an
    ``http://`` endpoint (a local fake, tests only), REST over plain HTTP with no credentials at all."""
    try:
        from google.cloud import aiplatform_v1  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:  # pragma: no cover - a dependency of the service
        from .base import EngineUnavailable

        raise EngineUnavailable("google-cloud-aiplatform is needed to submit Vertex jobs") from exc
    endpoint = config.endpoint
    if endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        local: JobServiceClient = aiplatform_v1.JobServiceClient(
            transport="rest",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
        )
        return local
    client: JobServiceClient = aiplatform_v1.JobServiceClient(  # pragma: no cover - needs GCP
        client_options={"api_endpoint": endpoint}
    )
    return client  # pragma: no cover


def _state_name(job: Any) -> str:
    """``JOB_STATE_RUNNING`` and so on, from a proto enum (or a plain string)."""
    state = getattr(job, "state", None)
    return str(getattr(state, "name", state) or "JOB_STATE_UNSPECIFIED")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class VertexAIDispatcher:
    """Submits one Vertex AI CustomJob per diarization job (runs nowhere near here)."""

    name = "vertex"

    def __init__(
        self,
        config: VertexConfig,
        client: JobServiceClient | None = None,
        *,
        subscription: str,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._client = client
        #: the subscription the job pretends the event came through (the diarization service's, in the topology)
        self.subscription = subscription
        self._clock = clock
        self._sleep = sleep

    def _job_client(self) -> JobServiceClient:
        if self._client is None:
            self._client = default_job_client(self.config)
        return self._client

    @property
    def model(self) -> str:
        return self.config.pyannote_model

    @property
    def accelerator(self) -> str:
        """Where the job runs, e.g. ``NVIDIA_L4`` (``cpu`` without accelerators)."""
        if self.config.accelerator_count <= 0:
            return "cpu"
        suffix = f"x{self.config.accelerator_count}" if self.config.accelerator_count > 1 else ""
        return f"{self.config.accelerator_type}{suffix}"

    def dispatch(self, event: events.AudioIngested) -> str:
        """Submit a CustomJob for one ``audio.ingested`` event; return the job's name."""
        envelope = json.dumps(push_envelope(event, self.subscription))
        return self.submit(event.data.job_id, envelope, event_id=event.id)

    def submit(self, job_id: str, envelope_json: str, *, event_id: str | None = None) -> str:
        """Submit the job; return the CustomJob resource name. Raises :class:`DispatchUnavailable` when Vertex AI
        does not take it (any error of the client or of the call: quota, permissions, network, API)."""
        request = build_custom_job_request(self.config, job_id=job_id, envelope_json=envelope_json, event_id=event_id)
        try:
            response = self._job_client().create_custom_job(request=request, timeout=CALL_TIMEOUT_S)
        except Exception as exc:
            raise DispatchUnavailable(
                self.name, GPU_DISPATCH_REFUSED, f"Vertex AI did not create the custom job: {_describe(exc)}"
            ) from exc
        name = str(getattr(response, "name", ""))
        log.info(
            "diarization.vertex_job_submitted",
            job_id=job_id,
            custom_job=name,
            machine_type=self.config.machine_type,
            accelerator=self.config.accelerator_type,
        )
        return name

    def wait_started(self, name: str, *, job_id: str) -> None:
        """Return once the custom job ``name`` runs (or has run); raise :class:`DispatchUnavailable` when it has
        not started within ``config.start_timeout_s`` (the job is cancelled first, best effort) or ended without
        ever running. A failed look at the job is logged and retried until the deadline."""
        client = self._job_client()
        deadline = self._clock() + self.config.start_timeout_s
        state = "JOB_STATE_UNSPECIFIED"
        while True:
            try:
                job = client.get_custom_job(name=name, timeout=CALL_TIMEOUT_S)
            except Exception as exc:
                log.warning("diarization.vertex_job_poll_failed", job_id=job_id, custom_job=name, error=_describe(exc))
            else:
                state = _state_name(job)
                # start_time is set once the job first ran: a job that ran and failed reports itself
                if state in _STARTED_STATES or getattr(job, "start_time", None):
                    log.info("diarization.vertex_job_started", job_id=job_id, custom_job=name, state=state)
                    return
                if state in _ENDED_STATES:
                    raise DispatchUnavailable(
                        self.name,
                        GPU_START_FAILED,
                        f"the Vertex AI custom job {name} ended ({state}) before it started",
                    )
            left = deadline - self._clock()
            if left <= 0:
                break
            self._sleep(min(self.config.poll_s, left))
        self._cancel(name, job_id=job_id)
        raise DispatchUnavailable(
            self.name,
            GPU_START_TIMEOUT,
            f"the Vertex AI custom job {name} did not start within {self.config.start_timeout_s:g} s "
            f"(last state {state}); it was cancelled",
        )

    def _cancel(self, name: str, *, job_id: str) -> None:
        """Best effort: a job left pending would start later and diarize the job a second time."""
        try:
            self._job_client().cancel_custom_job(name=name, timeout=CALL_TIMEOUT_S)
        except Exception as exc:
            log.warning("diarization.vertex_job_cancel_failed", job_id=job_id, custom_job=name, error=_describe(exc))
        else:
            log.info("diarization.vertex_job_cancelled", job_id=job_id, custom_job=name)
