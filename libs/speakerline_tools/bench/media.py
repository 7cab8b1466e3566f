"""Benchmark: normalize throughput (x realtime) and peak memory for a long MP3.

Called by ``make bench-micro`` (tests/bench/test_benchmarks.py) and by hand::

    python -m speakerline_tools.bench.media            # 1 hour, prints one JSON object
    python -m speakerline_tools.bench.media --minutes 10

The input is a real 44.1 kHz stereo 128 kbit/s MP3 of a speech-like signal: one minute is encoded with LAME
(bit reservoir off, no ID3/Xing header, so minutes join cleanly) and written back to back into a temporary
file, which takes a second instead of the ~40 s a full one-hour encode would. Decoding cost is that of any
CBR MP3. Resident memory is sampled every 5 ms by a thread while :func:`ingest_file` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from speakerline.audio import MediaLimits, NormalizedAudio, ingest_file

_RATE = 44100
_STATM = Path("/proc/self/statm")


@dataclass(frozen=True)
class BenchResult:
    input_duration_s: float
    input_bytes: int
    output_bytes: int
    wall_s: float
    x_realtime: float
    rss_before_mib: float
    peak_rss_mib: float
    peak_rss_growth_mib: float


def _speech_like(seconds: float) -> np.ndarray:
    n = round(seconds * _RATE)
    t = np.arange(n) / _RATE
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.4 * t)
    phase = 2 * np.pi * np.cumsum(f0) / _RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 10))
    envelope = np.clip(np.sin(2 * np.pi * 3.5 * t), 0, None) ** 0.5
    return (0.25 * voiced * envelope).astype(np.float32)


def _encode_minute() -> bytes:
    with tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024) as buf:
        with av.open(buf, "w", format="mp3", options={"id3v2_version": "0", "write_xing": "0"}) as out:
            stream = out.add_stream("libmp3lame", rate=_RATE, layout="stereo")
            stream.codec_context.bit_rate = 128_000
            stream.codec_context.options = {"reservoir": "0"}
            planes = np.tile(_speech_like(60.0), (2, 1))
            step = 1152
            for start in range(0, planes.shape[1], step):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(planes[:, start : start + step]), format="fltp", layout="stereo"
                )
                frame.sample_rate = _RATE
                frame.pts = start
                frame.time_base = Fraction(1, _RATE)
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        buf.seek(0)
        return buf.read()


def _rss_bytes() -> int:
    if _STATM.exists():
        return int(_STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


class _PeakSampler(threading.Thread):
    def __init__(self, interval_s: float = 0.005) -> None:
        super().__init__(daemon=True)
        self._interval = interval_s
        self._stop_event = threading.Event()
        self.peak = _rss_bytes()

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, _rss_bytes())
        return self.peak


def bench_normalize(minutes: int = 60, workdir: Path | None = None) -> BenchResult:
    """Normalize a ``minutes``-long MP3 from disk to 16 kHz mono WAV; report speed and memory."""
    mib = 1024 * 1024
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        src_path, dst_path = Path(tmp) / "input.mp3", Path(tmp) / "output.wav"
        minute = _encode_minute()
        with src_path.open("wb") as fh:
            for _ in range(minutes):
                fh.write(minute)
        size = src_path.stat().st_size
        limits = MediaLimits(max_bytes=max(size, MediaLimits().max_bytes))

        rss_before = _rss_bytes()
        sampler = _PeakSampler()
        sampler.start()
        started = time.perf_counter()
        with src_path.open("rb") as src:
            result = ingest_file(src, size, dst_path, limits)
        wall = time.perf_counter() - started
        peak = sampler.stop()
        if not isinstance(result, NormalizedAudio):
            raise RuntimeError(f"benchmark input was rejected: {result}")
        return BenchResult(
            input_duration_s=round(result.duration_s, 3),
            input_bytes=size,
            output_bytes=result.size_bytes,
            wall_s=round(wall, 3),
            x_realtime=round(result.duration_s / wall, 1),
            rss_before_mib=round(rss_before / mib, 1),
            peak_rss_mib=round(peak / mib, 1),
            peak_rss_growth_mib=round((peak - rss_before) / mib, 1),
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=int, default=60, help="input duration (default 60)")
    args = parser.parse_args(argv)
    print(json.dumps(asdict(bench_normalize(args.minutes)), indent=2))


if __name__ == "__main__":
    main()
