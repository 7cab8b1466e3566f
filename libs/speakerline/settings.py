"""Every setting of every service, typed, read once from the environment (pydantic-settings).

The environment variable of each field is in its alias (docs/configuration.md lists them). A service
reads the fields it needs from the one `Settings` object `build_service` hands its wiring; tests construct
`Settings(...)` directly, with no environment at all. A secret field has a companion `*_secret` field holding a
Secret Manager version resource name, which the cloud deployment sets instead of the value (`secret()`).
A tuning field left None means the service's own default, documented where the service defines it (MediaLimits,
PostprocessConfig, ...), so that a default is written once.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TypeVar

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from speakerline import topology as topo

DEFAULT_PYANNOTE_MODEL = "pyannote/speaker-diarization-3.1"
#: Where an engine runs: "auto" is CUDA when there is one, else the CPU.
DEFAULT_DIARIZATION_DEVICE = "auto"
#: The Vertex AI custom job's machine, one NVIDIA L4 by default, and the engine it runs ("auto": pyannote when it
#: loads, else the embedded engine).
DEFAULT_VERTEX_MACHINE_TYPE = "g2-standard-8"
DEFAULT_VERTEX_ACCELERATOR = "NVIDIA_L4"
DEFAULT_VERTEX_ACCELERATOR_COUNT = 1
DEFAULT_VERTEX_WORKER_ENGINE = "auto"
#: The largest upload accepted (ingest's MediaLimits, and the API before it signs an upload URL):
#: 24 hours of 16 kHz mono WAV (2.6 GiB) or of 320 kbit/s MP3 (3.2 GiB) fit.
DEFAULT_MAX_UPLOAD_BYTES = 4 * 1024**3


T = TypeVar("T")


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def or_default(value: T | None, default: T) -> T:
    """A tuning setting's value: left None, the service's own default (written once, where the service defines
    it); 0 or an empty string is a value, not the default."""
    return default if value is None else value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    # --- every service ---------------------------------------------------------------------------------------
    project: str = Field("", validation_alias=_env("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT"))
    topology_file: Path | None = Field(None, validation_alias=_env("SPEAKERLINE_TOPOLOGY"))
    bucket_prefix: str = Field("", validation_alias=_env("SPEAKERLINE_BUCKET_PREFIX"))
    #: None: the entry point's default (INFO for a service, WARNING for the CLI).
    log_level: str | None = Field(None, validation_alias=_env("SPEAKERLINE_LOG_LEVEL"))
    # The push function serves the service this names (the images set SERVICE).
    service: str = Field("", validation_alias=_env("SPEAKERLINE_SERVICE", "SERVICE"))
    ready_file: Path | None = Field(None, validation_alias=_env("SPEAKERLINE_READY_FILE"))
    #: Where a pull worker notes the messages it is handling, so that after a crash its restart hands them back to
    #: Pub/Sub at once (`runtime.InflightJournal`); a folder that survives the process (VM disk, local stack).
    inflight_dir: Path | None = Field(None, validation_alias=_env("SPEAKERLINE_INFLIGHT_DIR"))
    #: Fault injection for the local stack's fault tests (`speakerline.failpoints`); never set in the cloud.
    failpoints_file: Path | None = Field(None, validation_alias=_env("SPEAKERLINE_FAILPOINTS_FILE"))
    worker_name: str = Field("", validation_alias=_env("SPEAKERLINE_WORKER_NAME"))
    #: OpenTelemetry exporters (`speakerline.telemetry`): "gcp" = Cloud Trace + Cloud Monitoring (the cloud
    #: deployment sets it); OTLP is on when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    telemetry: str = Field("", validation_alias=_env("SPEAKERLINE_TELEMETRY"))
    #: Local JSON lines of spans and metrics, `<dir>/traces/<service>.jsonl` and `<dir>/metrics/...` (the local
    #: stack sets `.stack/`; `speakerline jobs trace` reads them).
    telemetry_dir: Path | None = Field(None, validation_alias=_env("SPEAKERLINE_TELEMETRY_DIR"))
    source_prefix: str = "//speakerline/services"
    #: Where a service whose topology entrypoint is `http` (the API) listens; Cloud Run sets PORT.
    http_host: str = Field("0.0.0.0", validation_alias=_env("SPEAKERLINE_HTTP_HOST"))
    http_port: int = Field(8080, ge=1, le=65535, validation_alias=_env("PORT", "SPEAKERLINE_HTTP_PORT"))

    # --- ingest ----------------------------------------------------------------------------------------------
    max_upload_bytes: int | None = Field(None, validation_alias=_env("SPEAKERLINE_MAX_UPLOAD_BYTES"))
    min_duration_s: float | None = Field(None, validation_alias=_env("SPEAKERLINE_MIN_DURATION_S"))
    max_duration_s: float | None = Field(None, validation_alias=_env("SPEAKERLINE_MAX_DURATION_S"))

    # --- diarization -----------------------------------------------------------------------------------------
    engine: str = Field("", validation_alias=_env("SPEAKERLINE_ENGINE"))
    vertex_dispatch: bool = Field(False, validation_alias=_env("SPEAKERLINE_VERTEX_DISPATCH"))
    pyannote_model: str = Field(DEFAULT_PYANNOTE_MODEL, validation_alias=_env("SPEAKERLINE_PYANNOTE_MODEL"))
    hf_token: str | None = Field(None, validation_alias=_env("SPEAKERLINE_HF_TOKEN", "HF_TOKEN"), repr=False)
    hf_token_secret: str | None = Field(None, validation_alias=_env("SPEAKERLINE_HF_TOKEN_SECRET"))
    diarization_device: str = Field(DEFAULT_DIARIZATION_DEVICE, validation_alias=_env("SPEAKERLINE_DIARIZATION_DEVICE"))
    model_cache_dir: Path | None = Field(None, validation_alias=_env("SPEAKERLINE_MODEL_CACHE_DIR"))
    embedded_weights_dir: Path | None = Field(None, validation_alias=_env("SPEAKERLINE_EMBEDDED_WEIGHTS_DIR"))
    progress_interval_s: float | None = Field(None, validation_alias=_env("SPEAKERLINE_PROGRESS_INTERVAL_S"))
    vertex_region: str = Field("", validation_alias=_env("SPEAKERLINE_VERTEX_REGION"))
    vertex_image: str = Field("", validation_alias=_env("SPEAKERLINE_VERTEX_IMAGE"))
    vertex_service_account: str | None = Field(None, validation_alias=_env("SPEAKERLINE_VERTEX_SERVICE_ACCOUNT"))
    vertex_machine_type: str = Field(
        DEFAULT_VERTEX_MACHINE_TYPE, validation_alias=_env("SPEAKERLINE_VERTEX_MACHINE_TYPE")
    )
    vertex_accelerator: str = Field(DEFAULT_VERTEX_ACCELERATOR, validation_alias=_env("SPEAKERLINE_VERTEX_ACCELERATOR"))
    vertex_accelerator_count: int = Field(
        DEFAULT_VERTEX_ACCELERATOR_COUNT, validation_alias=_env("SPEAKERLINE_VERTEX_ACCELERATOR_COUNT")
    )
    vertex_worker_engine: str = Field(
        DEFAULT_VERTEX_WORKER_ENGINE, validation_alias=_env("SPEAKERLINE_VERTEX_WORKER_ENGINE")
    )
    #: Vertex AI API endpoint; None: `<region>-aiplatform.googleapis.com`. An `http://` URL means a local fake of
    #: the REST API, called without credentials (tests only).
    vertex_api_endpoint: str | None = Field(None, validation_alias=_env("SPEAKERLINE_VERTEX_API_ENDPOINT"))
    #: How long a dispatched custom job may take to start running before the worker cancels it and runs the job
    #: on its own CPU engine; None: the service's default (`engines/vertex.py`, 900 s).
    gpu_start_timeout_s: float | None = Field(None, gt=0, validation_alias=_env("SPEAKERLINE_GPU_START_TIMEOUT_S"))

    # --- post-processing -------------------------------------------------------------------------------------
    merge_gap_s: float | None = Field(None, validation_alias=_env("SPEAKERLINE_MERGE_GAP_S"))
    min_segment_s: float | None = Field(None, validation_alias=_env("SPEAKERLINE_MIN_SEGMENT_S"))

    # --- api (the HTTP front door) ----------------------------------------------------------------------------
    #: A service-account key file (JSON) to sign Cloud Storage URLs with; unset in the cloud, where the API signs
    #: with its own identity through IAM signBlob (no key file). The local stack generates one.
    api_signing_key_file: Path | None = Field(None, validation_alias=_env("SPEAKERLINE_API_SIGNING_KEY_FILE"))
    #: Base URL signed URLs point at when it is not storage.googleapis.com (the local fake-gcs-server).
    api_public_storage_url: str | None = Field(None, validation_alias=_env("SPEAKERLINE_API_PUBLIC_STORAGE_URL"))
    #: Audience of Google-signed ID tokens the API accepts (its Cloud Run URL); empty: API keys only.
    api_id_token_audience: str = Field("", validation_alias=_env("SPEAKERLINE_API_ID_TOKEN_AUDIENCE"))
    #: Google identities (service-account e-mails) allowed in with an ID token, each `email=producer`, comma-separated.
    api_id_token_producers: str = Field("", validation_alias=_env("SPEAKERLINE_API_ID_TOKEN_PRODUCERS"))
    api_rate_limit_per_minute: int = Field(600, ge=1, validation_alias=_env("SPEAKERLINE_API_RATE_LIMIT_PER_MINUTE"))
    api_rate_limit_burst: int = Field(60, ge=1, validation_alias=_env("SPEAKERLINE_API_RATE_LIMIT_BURST"))
    api_max_body_bytes: int = Field(64 * 1024, ge=1024, validation_alias=_env("SPEAKERLINE_API_MAX_BODY_BYTES"))
    api_upload_url_ttl_s: int = Field(
        3600, ge=60, le=7 * 86400, validation_alias=_env("SPEAKERLINE_API_UPLOAD_URL_TTL_S")
    )
    api_result_url_ttl_s: int = Field(
        300, ge=10, le=7 * 86400, validation_alias=_env("SPEAKERLINE_API_RESULT_URL_TTL_S")
    )
    #: An event stream ends after this long even if the job has not (the client reconnects with Last-Event-ID).
    api_sse_max_s: float = Field(3600.0, gt=0, validation_alias=_env("SPEAKERLINE_API_SSE_MAX_S"))
    api_sse_ping_s: float = Field(15.0, gt=0, validation_alias=_env("SPEAKERLINE_API_SSE_PING_S"))

    # --- notification ----------------------------------------------------------------------------------------
    webhook_signing_key: str | None = Field(None, validation_alias=_env("SPEAKERLINE_WEBHOOK_SIGNING_KEY"), repr=False)
    webhook_signing_key_secret: str | None = Field(
        None, validation_alias=_env("SPEAKERLINE_WEBHOOK_SIGNING_KEY_SECRET")
    )
    #: A file holding the key (docker compose's provision service generates one into a shared volume).
    webhook_signing_key_file: Path | None = Field(None, validation_alias=_env("SPEAKERLINE_WEBHOOK_SIGNING_KEY_FILE"))
    # A key being rotated out: webhooks carry a second signature made with it until it is unset (docs/deploy.md).
    webhook_signing_key_previous: str | None = Field(
        None, validation_alias=_env("SPEAKERLINE_WEBHOOK_SIGNING_KEY_PREVIOUS"), repr=False
    )
    webhook_signing_key_previous_secret: str | None = Field(
        None, validation_alias=_env("SPEAKERLINE_WEBHOOK_SIGNING_KEY_PREVIOUS_SECRET")
    )
    discord_webhook_url: str | None = Field(None, validation_alias=_env("SPEAKERLINE_DISCORD_WEBHOOK_URL"), repr=False)
    discord_webhook_url_secret: str | None = Field(
        None, validation_alias=_env("SPEAKERLINE_DISCORD_WEBHOOK_URL_SECRET")
    )
    slack_webhook_url: str | None = Field(None, validation_alias=_env("SPEAKERLINE_SLACK_WEBHOOK_URL"), repr=False)
    slack_webhook_url_secret: str | None = Field(None, validation_alias=_env("SPEAKERLINE_SLACK_WEBHOOK_URL_SECRET"))
    webhook_allowed_hosts: str = Field("", validation_alias=_env("SPEAKERLINE_WEBHOOK_ALLOWED_HOSTS"))
    allow_private_webhooks: bool = Field(False, validation_alias=_env("SPEAKERLINE_ALLOW_PRIVATE_WEBHOOKS"))
    webhook_timeout_s: float = Field(10.0, validation_alias=_env("SPEAKERLINE_WEBHOOK_TIMEOUT_S"))

    @cached_property
    def topology(self) -> topo.Topology:
        return topo.load(self.topology_file)

    def source(self, service: str) -> str:
        """CloudEvent `source` of events this service publishes."""
        return f"{self.source_prefix}/{service}"

    def bucket(self, key: str) -> str:
        # Bucket names are global: the cloud deployment prefixes them with the project id.
        return self.bucket_prefix + self.topology.bucket(key)
