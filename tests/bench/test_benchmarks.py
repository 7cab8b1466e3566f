"""Speed and memory targets (`make bench`; not part of `make test`). Targets are for this 2-core CPU machine."""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

import pytest
import soundfile as sf

from speakerline import events
from speakerline_tools.bench.media import bench_normalize

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample" / "conversation.flac"


def test_normalizing_one_hour_of_mp3(benchmark) -> None:  # type: ignore[no-untyped-def]
    result = benchmark.pedantic(bench_normalize, kwargs={"minutes": 60}, rounds=1, iterations=1)
    benchmark.extra_info.update(json.loads(json.dumps(result.__dict__)))
    assert result.x_realtime >= 100, "normalization must run far faster than real time"
    assert result.peak_rss_growth_mib <= 64, "normalization must stream, not hold the file in memory"


def test_event_codec_round_trips(benchmark) -> None:  # type: ignore[no-untyped-def]
    example = events.parse_json((REPO / "schemas/events/job.completed/v1.example.json").read_bytes())

    def round_trip() -> None:
        event = events.JobCompleted.new(example.data, source="//bench")  # type: ignore[arg-type]
        body, attributes = events.to_pubsub(event)
        events.parse_pubsub(body, attributes)

    benchmark(round_trip)
    assert benchmark.stats.stats.mean < 0.005, (
        "build + encode + decode + typed models + 3 validations must stay under 5 ms"
    )


def test_embedded_engine_real_time_factor(benchmark) -> None:  # type: ignore[no-untyped-def]
    from diarization.engines.base import DiarizationOptions
    from diarization.engines.embedded import EmbeddedEngine

    started = time.perf_counter()
    engine = EmbeddedEngine.from_pretrained()
    load_s = time.perf_counter() - started
    audio, rate = sf.read(SAMPLE)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "sample.wav"
        sf.write(wav, audio, rate, subtype="PCM_16")
        result = benchmark.pedantic(engine.diarize, args=(wav, DiarizationOptions()), rounds=2, iterations=1)
    duration = len(audio) / rate
    rtf = benchmark.stats.stats.mean / duration
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    benchmark.extra_info.update(
        audio_s=duration, rtf=rtf, load_s=load_s, peak_rss_mib=peak_mib, speakers=len(result.speakers)
    )
    assert rtf <= 1.0, f"embedded engine slower than real time on this CPU (RTF {rtf:.2f})"
    assert peak_mib <= 4096


pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
