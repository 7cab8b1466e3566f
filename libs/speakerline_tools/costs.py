"""Cost model: USD per hour of audio for each way of deploying speakerline, from measured figures.

:func:`cost_per_audio_hour` is pure arithmetic: it turns :class:`Measured` (what a benchmark saw: the engine's
real-time factors, each service's handling seconds, messages, Firestore and Cloud Storage operations per job) into
dollars with :class:`Prices` (public list prices, us-central1, on demand, no free tier, no committed-use discount)
and :class:`Deployment` (the sizes and settings of infra/terraform, and the few numbers nobody measured). Every
option carries the same shared part (the other services, Pub/Sub, Firestore, Cloud Storage); only diarization
differs:

- ``cloud_run_cpu``: the embedded engine in a Cloud Run CPU worker (instance-based billing: a pull worker works
  outside requests);
- ``cloud_run_l4``: the Cloud Run service with one NVIDIA L4 that infra/terraform deploys (8 vCPU, 32 GiB);
- ``vertex_l4``: one Vertex AI CustomJob per audio file on g2-standard-8 (one L4), its start-up billed too.

The GPU options need a measured GPU real-time factor: without one they are ``{"skipped": "no GPU"}``, never an
estimate. Costs are for busy workers (an idle minimum instance costs ``instance_usd_per_hour`` whatever it does).

    report = cost_per_audio_hour(Measured(engine_rtf_cpu=0.2, engine_rtf_gpu=None, job_audio_s=240))
    report["options"]["cloud_run_cpu"]["usd_per_audio_hour"]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

AUDIO_HOUR_S = 3600.0
TIB = 2**40
GIB = 2**30
# The normalized WAV ingest writes to the work bucket: 16 kHz mono PCM16.
WAV_SAMPLE_RATE = 16_000
WAV_BYTES_PER_SAMPLE = 2
WAV_BYTES_PER_AUDIO_HOUR = WAV_SAMPLE_RATE * WAV_BYTES_PER_SAMPLE * AUDIO_HOUR_S  # 115.2 MB

# What the system speakerline replaces charged: $0.05-0.10 per job of 3-5 minutes of audio.
LINEAGE_USD_PER_JOB = (0.05, 0.10)
LINEAGE_JOB_MINUTES = (3.0, 5.0)

NO_GPU = {"skipped": "no GPU"}


@dataclass(frozen=True)
class Prices:
    """Public list prices in USD: us-central1, on demand, no free tier, no committed-use discount."""

    as_of: str = "2026-12-02"

    # https://cloud.google.com/run/pricing (Tier 1 regions; the same figures as the Cloud Billing SKUs of
    # us-central1 read 2026-08): instance-based billing (CPU always allocated: the GPU worker, any pull worker).
    run_instance_vcpu_s: float = 0.000018
    run_instance_gib_s: float = 0.000002
    # https://cloud.google.com/run/pricing: request-based billing (the push services, cpu_idle = true).
    run_request_vcpu_s: float = 0.000024
    run_request_gib_s: float = 0.0000025
    # https://cloud.google.com/run/pricing: per request, request-based billing only.
    run_per_million_requests: float = 0.40
    # https://cloud.google.com/run/pricing: NVIDIA L4 per GPU-second, without / with GPU zonal redundancy
    # (Cloud Billing SKUs of us-central1 read 2026-08: $0.672/h and $1.047/h).
    run_l4_gpu_s: float = 0.0001867
    run_l4_gpu_s_zonal_redundancy: float = 0.0002909
    # https://cloud.google.com/vertex-ai/pricing: g2-standard-8 node-hour, the L4 included (Vertex AI prices
    # accelerator-optimized machine types with their GPU: 1.15 x Compute Engine's $0.853624/h,
    # https://cloud.google.com/products/compute/pricing/accelerator-optimized). $0.98181 is the prediction table's
    # figure (read 2026-10-04); the custom-training table is not verified here (same 1.15 markup on n1-standard-4:
    # $0.21849885 vs $0.189999).
    vertex_g2_standard_8_l4_per_hour: float = 0.98181
    # https://cloud.google.com/pubsub/pricing: throughput (publish, push, pull), per TiB; every publish, push or
    # pull request is billed at least this many bytes.
    pubsub_per_tib: float = 40.0
    pubsub_min_request_bytes: int = 1000
    # https://cloud.google.com/firestore/pricing: per 100,000 documents, multi-region nam5 (the default
    # firestore_location of infra/terraform; a us-central1 database costs half: $0.03 / $0.09 / $0.01). The
    # per-location table is not in the pages read here: the figures are the long-standing multi-region ones.
    firestore_reads_per_100k: float = 0.06
    firestore_writes_per_100k: float = 0.18
    firestore_deletes_per_100k: float = 0.02
    # https://cloud.google.com/storage/pricing: Standard storage in us-central1 per GiB-month (GCS's "GB" is
    # 2^30 bytes), Class A (writes, lists) and Class B (reads, metadata) operations per 1,000
    # (https://cloud.google.com/storage/pricing-examples: $0.005 and $0.0004).
    gcs_standard_gib_month: float = 0.020
    gcs_class_a_per_1k: float = 0.005
    gcs_class_b_per_1k: float = 0.0004


LIST_PRICES = Prices()


@dataclass(frozen=True)
class Resources:
    vcpu: float
    memory_gib: float


@dataclass(frozen=True)
class Deployment:
    """Sizes and settings of the deployment (infra/terraform defaults) and the numbers nobody measured."""

    # run.tf's CPU-only worker (diarization_engine = "embedded"): 1 vCPU, since the embedded engine runs on one
    # thread by default (EmbeddedEngine num_threads=1), and 4 GiB (engine peak ~1.6 GB plus the WAV in Cloud Run's
    # in-memory file system).
    cpu_worker: Resources = Resources(vcpu=1.0, memory_gib=4.0)
    # variables.tf diarization_cpu / diarization_memory (Cloud Run needs >= 4 vCPU and 16 GiB with a GPU).
    gpu_worker: Resources = Resources(vcpu=8.0, memory_gib=32.0)
    # variables.tf diarization_gpu_zonal_redundancy (default off).
    gpu_zonal_redundancy: bool = False
    # variables.tf service_resources: default 1 vCPU / 1 GiB; ingest 2 vCPU / 4 GiB.
    service_resources: Mapping[str, Resources] = field(
        default_factory=lambda: {"ingest": Resources(vcpu=2.0, memory_gib=4.0), "api": Resources(1.0, 1.0)}
    )
    default_service_resources: Resources = Resources(vcpu=1.0, memory_gib=1.0)
    # A CustomJob provisions a g2-standard-8, pulls the diarization image (about 8 GB with CUDA) and loads the
    # model before the engine starts; Vertex bills that time. Not measured here.
    vertex_startup_s: float = 300.0
    # topology.yaml lifecycle_delete_after_days of the uploads and work buckets.
    transient_storage_days: float = 1.0
    # variables.tf results_retention_days.
    results_retention_days: float = 30.0
    # Cloud Storage prorates a GiB-month over the month's hours.
    hours_per_month: float = 730.0

    def resources_of(self, service: str) -> Resources:
        return self.service_resources.get(service, self.default_service_resources)


DEFAULT_DEPLOYMENT = Deployment()


@dataclass(frozen=True)
class Measured:
    """What a benchmark measured. Per-job figures are for jobs of `job_audio_s` seconds of audio."""

    #: engine seconds per audio second on the CPU worker (`Deployment.cpu_worker`)
    engine_rtf_cpu: float
    #: the same on one NVIDIA L4; None when no GPU was measured
    engine_rtf_gpu: float | None
    #: audio seconds of one job
    job_audio_s: float
    #: seconds each push service spends handling one job (ingest, postprocess, notification, projector, api...)
    handling_s_per_job: Mapping[str, float] = field(default_factory=dict)
    #: seconds that grow with the audio instead (ingest's normalization), per hour of audio
    handling_s_per_audio_hour: Mapping[str, float] = field(default_factory=dict)
    #: diarization worker seconds per job outside the engine (download, upload, publish), on its own instance
    diarization_overhead_s_per_job: float = 0.0
    #: push requests per job (request-based Cloud Run billing charges each)
    push_requests_per_job: float = 0.0
    #: Pub/Sub publishes plus deliveries (push or pull) per job; each is one request of one message here
    pubsub_messages_per_job: float = 0.0
    #: average billed size of a message: body, attributes, 20 bytes of timestamp, message id
    pubsub_avg_message_bytes: float = 0.0
    firestore_reads_per_job: float = 0.0
    firestore_writes_per_job: float = 0.0
    firestore_deletes_per_job: float = 0.0
    gcs_class_a_per_job: float = 0.0
    gcs_class_b_per_job: float = 0.0
    #: bytes of the original uploads per hour of audio (their format's bitrate); WAV when not measured
    upload_bytes_per_audio_hour: float = WAV_BYTES_PER_AUDIO_HOUR
    #: the engine's raw result in the work bucket, per job
    raw_result_bytes_per_job: float = 0.0
    #: output.json, RTTM and WebVTT in the results bucket, per job
    output_bytes_per_job: float = 0.0

    def __post_init__(self) -> None:
        if self.job_audio_s <= 0:
            raise ValueError("job_audio_s must be > 0")
        if self.engine_rtf_cpu < 0 or (self.engine_rtf_gpu is not None and self.engine_rtf_gpu < 0):
            raise ValueError("real-time factors must be >= 0")

    @property
    def jobs_per_audio_hour(self) -> float:
        return AUDIO_HOUR_S / self.job_audio_s


def pubsub_billed_bytes(messages: float, avg_message_bytes: float, prices: Prices = LIST_PRICES) -> float:
    """Bytes Pub/Sub bills for `messages` single-message requests: at least the minimum per request."""
    return messages * max(float(prices.pubsub_min_request_bytes), avg_message_bytes)


def _shared(measured: Measured, prices: Prices, deployment: Deployment) -> dict[str, float]:
    """USD per audio hour of everything but diarization, by item."""
    jobs = measured.jobs_per_audio_hour
    items: dict[str, float] = {}
    for service in sorted({*measured.handling_s_per_job, *measured.handling_s_per_audio_hour}):
        seconds = measured.handling_s_per_job.get(service, 0.0) * jobs + measured.handling_s_per_audio_hour.get(
            service, 0.0
        )
        res = deployment.resources_of(service)
        items[service] = seconds * (res.vcpu * prices.run_request_vcpu_s + res.memory_gib * prices.run_request_gib_s)
    items["cloud_run_requests"] = measured.push_requests_per_job * jobs * prices.run_per_million_requests / 1e6
    billed = pubsub_billed_bytes(measured.pubsub_messages_per_job * jobs, measured.pubsub_avg_message_bytes, prices)
    items["pubsub"] = billed * prices.pubsub_per_tib / TIB
    items["firestore"] = (
        jobs
        * (
            measured.firestore_reads_per_job * prices.firestore_reads_per_100k
            + measured.firestore_writes_per_job * prices.firestore_writes_per_100k
            + measured.firestore_deletes_per_job * prices.firestore_deletes_per_100k
        )
        / 1e5
    )
    transient_bytes = (
        measured.upload_bytes_per_audio_hour + WAV_BYTES_PER_AUDIO_HOUR + measured.raw_result_bytes_per_job * jobs
    )
    gib_days = (
        transient_bytes * deployment.transient_storage_days
        + measured.output_bytes_per_job * jobs * deployment.results_retention_days
    ) / GIB
    items["storage_at_rest"] = gib_days * prices.gcs_standard_gib_month / (deployment.hours_per_month / 24.0)
    items["storage_operations"] = (
        jobs
        * (
            measured.gcs_class_a_per_job * prices.gcs_class_a_per_1k
            + measured.gcs_class_b_per_job * prices.gcs_class_b_per_1k
        )
        / 1e3
    )
    return items


def _option(
    diarization: Mapping[str, float], shared: Mapping[str, float], instance_usd_per_hour: float
) -> dict[str, Any]:
    breakdown = {**diarization, **shared}
    return {
        "usd_per_audio_hour": sum(breakdown.values()),
        "breakdown": breakdown,
        "instance_usd_per_hour": instance_usd_per_hour,
    }


def lineage_quote() -> dict[str, Any]:
    """The replaced system's quote per job, as USD per audio hour (cheapest: cheap long jobs)."""
    low = LINEAGE_USD_PER_JOB[0] * 60.0 / LINEAGE_JOB_MINUTES[1]
    high = LINEAGE_USD_PER_JOB[1] * 60.0 / LINEAGE_JOB_MINUTES[0]
    return {
        "usd_per_job": list(LINEAGE_USD_PER_JOB),
        "job_minutes": list(LINEAGE_JOB_MINUTES),
        "usd_per_audio_hour": [round(low, 6), round(high, 6)],
    }


def assumptions(deployment: Deployment = DEFAULT_DEPLOYMENT) -> dict[str, dict[str, Any]]:
    """Every number the model assumes rather than measures, with why."""
    return {
        "cpu_worker_vcpu": {
            "value": deployment.cpu_worker.vcpu,
            "why": "variables.tf diarization_cpu without a GPU: the embedded engine runs on one thread by default",
        },
        "cpu_worker_memory_gib": {
            "value": deployment.cpu_worker.memory_gib,
            "why": "variables.tf diarization_memory without a GPU: engine peak ~1.6 GB plus the WAV in memory",
        },
        "gpu_worker_vcpu": {"value": deployment.gpu_worker.vcpu, "why": "variables.tf diarization_cpu"},
        "gpu_worker_memory_gib": {"value": deployment.gpu_worker.memory_gib, "why": "variables.tf diarization_memory"},
        "gpu_zonal_redundancy": {
            "value": deployment.gpu_zonal_redundancy,
            "why": "variables.tf diarization_gpu_zonal_redundancy",
        },
        "service_resources": {
            "value": {
                name: {"vcpu": res.vcpu, "memory_gib": res.memory_gib}
                for name, res in {
                    "default": deployment.default_service_resources,
                    **deployment.service_resources,
                }.items()
            },
            "why": "variables.tf service_resources; a request is billed for its instance's whole size (no sharing "
            "with concurrent requests counted: an upper bound)",
        },
        "push_services_billing": {
            "value": "request-based",
            "why": "run.tf cpu_idle = true; diarization workers are instance-based (cpu_idle = false)",
        },
        "worker_utilization": {
            "value": 1.0,
            "why": "costs are for busy workers; an idle minimum instance costs instance_usd_per_hour",
        },
        "gpu_rtf_same_on_cloud_run_and_vertex": {
            "value": True,
            "why": "the same L4 and image; Vertex's g2-standard-8 has the same 8 vCPU / 32 GiB",
        },
        "vertex_startup_s": {
            "value": deployment.vertex_startup_s,
            "why": "provisioning, an ~8 GB image pull and the model load per CustomJob, billed; not measured",
        },
        "vertex_dispatcher_instance": {
            "value": 0.0,
            "why": "the Cloud Run worker that submits CustomJobs is a fixed cost (min instances), not per audio hour",
        },
        "transient_storage_days": {
            "value": deployment.transient_storage_days,
            "why": "uploads and work buckets delete after 1 day (topology.yaml lifecycle)",
        },
        "results_retention_days": {"value": deployment.results_retention_days, "why": "variables.tf default"},
        "wav_bytes_per_audio_hour": {
            "value": WAV_BYTES_PER_AUDIO_HOUR,
            "why": f"{WAV_SAMPLE_RATE} Hz mono PCM16 = {WAV_SAMPLE_RATE * WAV_BYTES_PER_SAMPLE} bytes/s",
        },
        "hours_per_month": {"value": deployment.hours_per_month, "why": "GCS prorates storage over a 730-hour month"},
        "not_counted": {
            "value": [
                "free tiers",
                "Cloud Logging",
                "Secret Manager access",
                "Artifact Registry storage",
                "Firestore storage",
                "same-region network",
            ],
            "why": "fixed per month, free within the region, or not measured (Cloud Logging: $0.50 per GiB ingested)",
        },
    }


def cost_per_audio_hour(
    measured: Measured, prices: Prices = LIST_PRICES, deployment: Deployment = DEFAULT_DEPLOYMENT
) -> dict[str, Any]:
    """USD per hour of audio of each deployment option, with its breakdown, the assumptions and the lineage quote.

    ``options`` maps ``cloud_run_cpu``, ``cloud_run_l4`` and ``vertex_l4`` to ``{"usd_per_audio_hour",
    "breakdown", "instance_usd_per_hour"}`` (the breakdown sums to the total) or, for a GPU option without a
    measured GPU real-time factor, exactly ``{"skipped": "no GPU"}``.
    """
    shared = _shared(measured, prices, deployment)
    jobs = measured.jobs_per_audio_hour
    overhead_s = measured.diarization_overhead_s_per_job * jobs

    cpu = deployment.cpu_worker
    cpu_rate = cpu.vcpu * prices.run_instance_vcpu_s + cpu.memory_gib * prices.run_instance_gib_s
    cpu_s = measured.engine_rtf_cpu * AUDIO_HOUR_S + overhead_s
    options: dict[str, Any] = {
        "cloud_run_cpu": _option({"diarization": cpu_s * cpu_rate}, shared, cpu_rate * 3600.0),
    }

    if measured.engine_rtf_gpu is None:
        options["cloud_run_l4"] = dict(NO_GPU)
        options["vertex_l4"] = dict(NO_GPU)
    else:
        gpu = deployment.gpu_worker
        gpu_s_price = prices.run_l4_gpu_s_zonal_redundancy if deployment.gpu_zonal_redundancy else prices.run_l4_gpu_s
        gpu_rate = gpu_s_price + gpu.vcpu * prices.run_instance_vcpu_s + gpu.memory_gib * prices.run_instance_gib_s
        gpu_s = measured.engine_rtf_gpu * AUDIO_HOUR_S + overhead_s
        options["cloud_run_l4"] = _option({"diarization": gpu_s * gpu_rate}, shared, gpu_rate * 3600.0)
        vertex_rate = prices.vertex_g2_standard_8_l4_per_hour / 3600.0
        options["vertex_l4"] = _option(
            {
                "diarization": gpu_s * vertex_rate,
                "diarization_startup": deployment.vertex_startup_s * jobs * vertex_rate,
            },
            shared,
            prices.vertex_g2_standard_8_l4_per_hour,
        )

    return {
        "prices_as_of": prices.as_of,
        "options": options,
        "assumptions": assumptions(deployment),
        "lineage_quote": lineage_quote(),
    }
