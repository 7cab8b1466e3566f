"""The Vertex AI CustomJob of one diarization job: where and how it runs (`VertexConfig`), the event it carries
(`push_envelope`) and the pure ``CreateCustomJobRequest`` that submits it (`build_custom_job_request`)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from speakerline import events
from speakerline.settings import (
    DEFAULT_PYANNOTE_MODEL,
    DEFAULT_VERTEX_ACCELERATOR,
    DEFAULT_VERTEX_ACCELERATOR_COUNT,
    DEFAULT_VERTEX_MACHINE_TYPE,
    DEFAULT_VERTEX_WORKER_ENGINE,
    Settings,
    or_default,
)

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
#: a custom job usually starts within minutes (machine provisioning, image pull); past this the GPU path is
#: taken to be down (no capacity in the region, a stuck quota) and the worker runs the job itself
DEFAULT_START_TIMEOUT_S = 900.0
DEFAULT_POLL_S = 5.0


@dataclass(frozen=True)
class VertexConfig:
    """Where and how to run diarization jobs on Vertex AI."""

    project: str
    region: str
    image_uri: str
    service_account: str | None = None
    machine_type: str = DEFAULT_VERTEX_MACHINE_TYPE
    accelerator_type: str = DEFAULT_VERTEX_ACCELERATOR
    accelerator_count: int = DEFAULT_VERTEX_ACCELERATOR_COUNT
    boot_disk_size_gb: int = 100
    timeout_s: int = 3600
    #: engine the GPU job runs: ``auto`` = pyannote when loadable, else embedded (on the GPU)
    worker_engine: str = DEFAULT_VERTEX_WORKER_ENGINE
    pyannote_model: str = DEFAULT_PYANNOTE_MODEL
    #: Secret Manager resource name, e.g. ``projects/p/secrets/hf-token/versions/latest``
    hf_token_secret: str | None = None
    #: extra non-secret environment for the worker (engine config, log level, ...)
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    network: str | None = None
    display_name_prefix: str = "speakerline-diarize"
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
            start_timeout_s=or_default(settings.gpu_start_timeout_s, DEFAULT_START_TIMEOUT_S),
        )

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
