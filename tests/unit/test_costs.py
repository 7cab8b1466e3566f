"""The cost model's arithmetic on hand-computable inputs (libs/speakerline_tools/costs.py)."""

from __future__ import annotations

import dataclasses
import re
import wave
from pathlib import Path
from typing import Any

import pytest

from speakerline.audio.limits import Rejection
from speakerline.audio.normalizing import normalize_file
from speakerline_tools import costs, repo
from speakerline_tools.costs import (
    LIST_PRICES,
    Deployment,
    Measured,
    Prices,
    Resources,
    cost_per_audio_hour,
    pubsub_billed_bytes,
)

OPTIONS = ("cloud_run_cpu", "cloud_run_l4", "vertex_l4")

# Prices a human can multiply: everything not under test is zero.
ZERO = Prices(
    as_of="test",
    run_instance_vcpu_s=0.0,
    run_instance_gib_s=0.0,
    run_request_vcpu_s=0.0,
    run_request_gib_s=0.0,
    run_per_million_requests=0.0,
    run_l4_gpu_s=0.0,
    run_l4_gpu_s_zonal_redundancy=0.0,
    vertex_g2_standard_8_l4_per_hour=0.0,
    pubsub_per_tib=0.0,
    firestore_reads_per_100k=0.0,
    firestore_writes_per_100k=0.0,
    firestore_deletes_per_100k=0.0,
    gcs_standard_gib_month=0.0,
    gcs_class_a_per_1k=0.0,
    gcs_class_b_per_1k=0.0,
)


def measured(**overrides: object) -> Measured:
    base: dict[str, object] = {"engine_rtf_cpu": 0.2, "engine_rtf_gpu": 0.02, "job_audio_s": 240.0}
    return Measured(**{**base, **overrides})  # type: ignore[arg-type]


def total(report: dict[str, object], option: str) -> float:
    return report["options"][option]["usd_per_audio_hour"]  # type: ignore[index, no-any-return]


def test_cpu_engine_cost_at_list_prices_on_one_vcpu_two_gib() -> None:
    deployment = Deployment(cpu_worker=Resources(vcpu=1.0, memory_gib=2.0))
    report = cost_per_audio_hour(measured(engine_rtf_cpu=0.2), LIST_PRICES, deployment)
    # 0.2 x 3600 = 720 engine seconds x ($0.000018 per vCPU-s + 2 x $0.000002 per GiB-s)
    assert report["options"]["cloud_run_cpu"]["breakdown"]["diarization"] == pytest.approx(720 * 0.000022)
    assert report["options"]["cloud_run_cpu"]["breakdown"]["diarization"] == pytest.approx(0.01584)
    assert report["options"]["cloud_run_cpu"]["instance_usd_per_hour"] == pytest.approx(3600 * 0.000022)


def _terraform_variables() -> dict[str, Any]:
    hcl2 = pytest.importorskip("hcl2")
    with (repo.root() / "infra" / "terraform" / "variables.tf").open() as f:
        return {name.strip('"'): spec for item in hcl2.load(f)["variable"] for name, spec in item.items()}


def _groups(pattern: str, text: str) -> tuple[str, ...]:
    found = re.search(pattern, text)
    assert found, f"{pattern} not in {text[:200]}"
    return found.groups()


def _resources(cpu: str, memory: str) -> Resources:
    return Resources(vcpu=float(cpu.strip('"')), memory_gib=float(memory.strip('"').removesuffix("Gi")))


def test_defaults_follow_the_terraform_variables() -> None:
    deployment = costs.DEFAULT_DEPLOYMENT
    variables = _terraform_variables()
    service_resources = variables["service_resources"]
    for service in ("ingest", "api"):
        given = service_resources["default"][service]
        assert deployment.resources_of(service) == _resources(given["cpu"], given["memory"]), service
    # unlisted services get the object type's optional() defaults
    ((cpu,), (memory,)) = (
        _groups(rf'{field} *= *optional\(string, *"([^"]+)"\)', service_resources["type"])
        for field in ("cpu", "memory")
    )
    assert deployment.resources_of("projector") == _resources(cpu, memory)
    # the worker's size when diarization_cpu / diarization_memory are left null: main.tf's coalesce(...) fallbacks
    main_tf = (repo.root() / "infra" / "terraform" / "main.tf").read_text()
    (gpu_cpu, cpu_cpu), (gpu_memory, cpu_memory) = (
        _groups(rf'coalesce\(var\.diarization_{name}, local\.worker_gpu \? "([^"]+)" : "([^"]+)"\)', main_tf)
        for name in ("cpu", "memory")
    )
    assert deployment.gpu_worker == _resources(gpu_cpu, gpu_memory)
    assert deployment.cpu_worker == _resources(cpu_cpu, cpu_memory)
    assert deployment.gpu_zonal_redundancy is variables["diarization_gpu_zonal_redundancy"]["default"]
    assert deployment.results_retention_days == variables["results_retention_days"]["default"]


def test_the_wav_size_per_audio_hour_is_what_ingest_writes(tmp_path: Path) -> None:
    source = tmp_path / "two-seconds.wav"
    with wave.open(str(source), "wb") as wav:  # 44.1 kHz stereo: ingest resamples and downmixes it
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(44_100)
        wav.writeframes(b"\x00\x01" * 2 * 44_100 * 2)
    normalized = tmp_path / "normalized.wav"
    assert not isinstance(normalize_file(source, normalized), Rejection)
    with wave.open(str(normalized), "rb") as wav:
        pcm_bytes_per_s = wav.getnframes() * wav.getnchannels() * wav.getsampwidth() / 2.0
    assert pytest.approx(pcm_bytes_per_s * 3600, rel=1e-3) == costs.WAV_BYTES_PER_AUDIO_HOUR


def test_gpu_options_on_cloud_run_and_vertex() -> None:
    prices = dataclasses.replace(
        ZERO,
        run_l4_gpu_s=0.001,
        run_instance_vcpu_s=0.0001,
        run_instance_gib_s=0.00001,
        vertex_g2_standard_8_l4_per_hour=3.6,
    )
    deployment = Deployment(vertex_startup_s=60.0)
    report = cost_per_audio_hour(measured(engine_rtf_gpu=0.05, job_audio_s=600.0), prices, deployment)
    # 180 GPU seconds x (0.001 + 8 x 0.0001 + 32 x 0.00001)
    run = report["options"]["cloud_run_l4"]
    assert run["breakdown"]["diarization"] == pytest.approx(180 * 0.00212)
    assert run["usd_per_audio_hour"] == pytest.approx(180 * 0.00212)
    # $3.60/h = $0.001/s: 180 engine seconds, and 6 jobs of 600 s per audio hour x 60 s of start-up each
    vertex = report["options"]["vertex_l4"]
    assert vertex["breakdown"]["diarization"] == pytest.approx(0.18)
    assert vertex["breakdown"]["diarization_startup"] == pytest.approx(0.36)
    assert vertex["usd_per_audio_hour"] == pytest.approx(0.54)
    assert vertex["instance_usd_per_hour"] == pytest.approx(3.6)


def test_zonal_redundancy_uses_its_own_gpu_price() -> None:
    prices = dataclasses.replace(ZERO, run_l4_gpu_s=0.001, run_l4_gpu_s_zonal_redundancy=0.002)
    plain = cost_per_audio_hour(measured(engine_rtf_gpu=0.1), prices)
    redundant = cost_per_audio_hour(measured(engine_rtf_gpu=0.1), prices, Deployment(gpu_zonal_redundancy=True))
    assert total(plain, "cloud_run_l4") == pytest.approx(0.36)
    assert total(redundant, "cloud_run_l4") == pytest.approx(0.72)


def test_gpu_options_are_skipped_without_a_gpu_measurement() -> None:
    report = cost_per_audio_hour(measured(engine_rtf_gpu=None))
    assert report["options"]["cloud_run_l4"] == {"skipped": "no GPU"}
    assert report["options"]["vertex_l4"] == {"skipped": "no GPU"}
    assert report["options"]["cloud_run_cpu"]["usd_per_audio_hour"] > 0


def test_pubsub_bills_at_least_1000_bytes_per_message() -> None:
    assert pubsub_billed_bytes(10, 200) == 10_000
    assert pubsub_billed_bytes(10, 3000) == 30_000
    prices = dataclasses.replace(ZERO, pubsub_per_tib=2.0**40)  # $1 per byte
    # 240 s jobs: 15 per audio hour x 12 messages x 1000 billed bytes (each message is 300 bytes)
    small = cost_per_audio_hour(measured(pubsub_messages_per_job=12, pubsub_avg_message_bytes=300), prices)
    assert small["options"]["cloud_run_cpu"]["breakdown"]["pubsub"] == pytest.approx(15 * 12 * 1000)
    large = cost_per_audio_hour(measured(pubsub_messages_per_job=12, pubsub_avg_message_bytes=1500), prices)
    assert large["options"]["cloud_run_cpu"]["breakdown"]["pubsub"] == pytest.approx(15 * 12 * 1500)


def test_pubsub_at_list_price() -> None:
    report = cost_per_audio_hour(measured(pubsub_messages_per_job=2**20, pubsub_avg_message_bytes=2**20), LIST_PRICES)
    # 15 jobs x 1 TiB each at $40 per TiB
    assert report["options"]["cloud_run_cpu"]["breakdown"]["pubsub"] == pytest.approx(15 * 40.0)


def test_services_firestore_and_requests() -> None:
    prices = dataclasses.replace(
        ZERO,
        run_request_vcpu_s=0.01,
        run_request_gib_s=0.001,
        run_per_million_requests=1e6,
        firestore_reads_per_100k=1e5,
        firestore_writes_per_100k=2e5,
        firestore_deletes_per_100k=3e5,
    )
    report = cost_per_audio_hour(
        measured(
            job_audio_s=1800.0,  # 2 jobs per audio hour
            handling_s_per_job={"projector": 0.5, "ingest": 1.0},
            handling_s_per_audio_hour={"ingest": 10.0},
            push_requests_per_job=7,
            firestore_reads_per_job=1,
            firestore_writes_per_job=2,
            firestore_deletes_per_job=1,
        ),
        prices,
    )
    breakdown = report["options"]["cloud_run_cpu"]["breakdown"]
    assert breakdown["ingest"] == pytest.approx((2 * 1.0 + 10.0) * (2 * 0.01 + 4 * 0.001))  # 2 vCPU, 4 GiB
    assert breakdown["projector"] == pytest.approx(2 * 0.5 * (0.01 + 0.001))  # default 1 vCPU, 1 GiB
    assert breakdown["cloud_run_requests"] == pytest.approx(14)
    assert breakdown["firestore"] == pytest.approx(2 * (1 + 2 * 2 + 3))
    assert breakdown["diarization"] == 0


def test_storage_is_prorated_over_the_retention() -> None:
    prices = dataclasses.replace(
        ZERO, gcs_standard_gib_month=730.0 / 24.0, gcs_class_a_per_1k=1000, gcs_class_b_per_1k=100
    )
    # $1 per GiB-day; 2 GiB of upload + the WAV kept 1 day, 1 GiB of outputs per job (2 jobs) kept 30 days
    report = cost_per_audio_hour(
        measured(
            job_audio_s=1800.0,
            upload_bytes_per_audio_hour=2 * 2**30,
            output_bytes_per_job=2**30,
            gcs_class_a_per_job=3,
            gcs_class_b_per_job=5,
        ),
        prices,
    )
    breakdown = report["options"]["cloud_run_cpu"]["breakdown"]
    assert breakdown["storage_at_rest"] == pytest.approx(2 + 115_200_000 / 2**30 + 2 * 30)
    assert breakdown["storage_operations"] == pytest.approx(2 * (3 * 1 + 5 * 0.1))


def test_every_option_carries_the_same_shared_part_and_breakdowns_sum_to_the_total() -> None:
    report = cost_per_audio_hour(
        measured(
            handling_s_per_job={"postprocess": 0.4, "notification": 0.2, "projector": 0.3},
            handling_s_per_audio_hour={"ingest": 20.0},
            diarization_overhead_s_per_job=2.0,
            push_requests_per_job=9,
            pubsub_messages_per_job=20,
            pubsub_avg_message_bytes=900,
            firestore_reads_per_job=10,
            firestore_writes_per_job=8,
            gcs_class_a_per_job=6,
            gcs_class_b_per_job=8,
            output_bytes_per_job=20_000,
        )
    )
    shared = {k: v for k, v in report["options"]["cloud_run_cpu"]["breakdown"].items() if k != "diarization"}
    for option in OPTIONS:
        entry = report["options"][option]
        assert entry["usd_per_audio_hour"] == pytest.approx(sum(entry["breakdown"].values()))
        assert {k: entry["breakdown"][k] for k in shared} == shared
    assert report["prices_as_of"] == LIST_PRICES.as_of


@pytest.mark.parametrize("option", OPTIONS)
def test_cost_grows_with_the_real_time_factor(option: str) -> None:
    rtfs = [0.01, 0.05, 0.2, 0.5, 1.0]
    field = "engine_rtf_cpu" if option == "cloud_run_cpu" else "engine_rtf_gpu"
    totals = [total(cost_per_audio_hour(measured(**{field: rtf})), option) for rtf in rtfs]
    assert totals == sorted(totals)
    assert len(set(totals)) == len(totals)


def test_lineage_quote_per_audio_hour() -> None:
    quote = cost_per_audio_hour(measured())["lineage_quote"]
    assert quote["usd_per_job"] == [0.05, 0.10]
    assert quote["job_minutes"] == [3.0, 5.0]
    assert quote["usd_per_audio_hour"] == pytest.approx([0.60, 2.00])


def test_assumptions_say_why() -> None:
    assumed = cost_per_audio_hour(measured())["assumptions"]
    assert assumed["vertex_startup_s"]["value"] == 300.0
    assert assumed["transient_storage_days"]["value"] == 1.0
    assert all(entry["why"] and "value" in entry for entry in assumed.values())


def test_invalid_measurements_are_refused() -> None:
    with pytest.raises(ValueError, match="job_audio_s"):
        measured(job_audio_s=0)
    with pytest.raises(ValueError, match="real-time"):
        measured(engine_rtf_gpu=-1.0)
