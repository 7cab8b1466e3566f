"""Fixtures for the ingest media tests: real audio files encoded at test time with PyAV.

The signal is real speech from ``tests/data/sample/conversation.flac`` when that file exists, else a
speech-like synthetic signal (a gliding harmonic series with a syllable-rate envelope).
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

SPEECH_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "conversation.flac"


@dataclass(frozen=True)
class Kind:
    """An encodable test format: container (PyAV muxer), codec, sample rate, channels, canonical name."""

    id: str
    muxer: str
    codec: str
    rate: int
    channels: int
    expected_format: str
    expected_codec: str
    options: tuple[tuple[str, str], ...] = ()


KINDS: tuple[Kind, ...] = (
    Kind("wav", "wav", "pcm_s16le", 44100, 2, "wav", "pcm_s16le"),
    Kind("mp3", "mp3", "libmp3lame", 44100, 2, "mp3", "mp3"),
    Kind("flac", "flac", "flac", 48000, 1, "flac", "flac"),
    # FFmpeg's native Vorbis encoder (the wheel has no libvorbis) is stereo-only and "experimental".
    Kind("ogg_vorbis", "ogg", "vorbis", 44100, 2, "ogg", "vorbis", (("strict", "experimental"),)),
    Kind("ogg_opus", "ogg", "libopus", 48000, 2, "ogg", "opus"),
    Kind("webm_opus", "webm", "libopus", 48000, 1, "webm", "opus"),
    Kind("m4a_aac", "ipod", "aac", 44100, 2, "mp4", "aac"),
    Kind("mp4_aac_22k", "mp4", "aac", 22050, 1, "mp4", "aac"),
)
KIND_BY_ID = {k.id: k for k in KINDS}


def _synthetic_speech(seconds: float, rate: int) -> np.ndarray:
    n = round(seconds * rate)
    t = np.arange(n) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.4 * t) + 15 * np.sin(2 * np.pi * 2.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 10))
    envelope = np.clip(np.sin(2 * np.pi * 3.5 * t), 0, None) ** 0.5  # ~4 syllables/s with pauses
    rng = np.random.default_rng(7)
    return (0.25 * voiced * envelope + 0.01 * rng.standard_normal(n)).astype(np.float32)


_speech_cache: dict[int, np.ndarray] = {}


def _real_speech(rate: int) -> np.ndarray | None:
    """Up to 30 s of the sample conversation, resampled to ``rate`` mono float32 (None without the file)."""
    if rate in _speech_cache:
        return _speech_cache[rate]
    if not SPEECH_SAMPLE.is_file():
        return None
    chunks: list[np.ndarray] = []
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    with av.open(str(SPEECH_SAMPLE)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray()[0].copy())
            if sum(len(c) for c in chunks) > 30 * rate:
                break
    if not chunks:
        return None
    speech = np.concatenate(chunks)[: 30 * rate]
    _speech_cache[rate] = speech
    return speech


def speech_signal(seconds: float, rate: int) -> np.ndarray:
    n = round(seconds * rate)
    real = _real_speech(rate)
    if real is None or len(real) == 0:
        return _synthetic_speech(seconds, rate)
    return np.resize(real, n).astype(np.float32)  # loops the sample when asked for more


def tone(seconds: float, rate: int, freq: float = 1000.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encode(
    kind: Kind,
    seconds: float = 3.0,
    *,
    signal: np.ndarray | None = None,
    muxer_options: dict[str, str] | None = None,
    rate: int | None = None,
) -> bytes:
    """Encode ``signal`` (mono float32, default speech) as ``kind`` and return the file's bytes."""
    rate = rate or kind.rate
    mono = speech_signal(seconds, rate) if signal is None else signal
    layout = "stereo" if kind.channels == 2 else "mono"
    planes = np.tile(mono, (kind.channels, 1))
    buf = io.BytesIO()
    with av.open(buf, "w", format=kind.muxer, options=muxer_options or {}) as out:
        stream = out.add_stream(kind.codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        if kind.options:
            stream.codec_context.options = dict(kind.options)
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, planes.shape[1], frame_size):
            chunk = np.ascontiguousarray(planes[:, start : start + frame_size])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def encode_video_only(seconds: float = 1.0) -> bytes:
    """A small MP4 with one MPEG-4 video stream and no audio."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(round(seconds * 10)):
            img = np.full((48, 64, 3), (i * 20) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def png_bytes() -> bytes:
    """A real 1x1 PNG."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


class CountingReader:
    """A seekable in-memory reader that counts bytes read and can fail on demand (a flaky GCS reader)."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self._buf = io.BytesIO(data)
        self.bytes_read = 0
        self.fail_after = fail_after

    def seekable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is not None and self.bytes_read >= self.fail_after:
            raise ConnectionResetError("connection reset by peer (simulated)")
        data = self._buf.read(n)
        self.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._buf.seek(offset, whence)

    def tell(self) -> int:
        return self._buf.tell()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking ``kind_id`` runs once per encodable format."""
    if "kind_id" in metafunc.fixturenames:
        metafunc.parametrize("kind_id", [k.id for k in KINDS])


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helpers above, for test modules (``--import-mode=importlib`` can't import conftest)."""
    return SimpleNamespace(
        KINDS=KINDS,
        KIND_BY_ID=KIND_BY_ID,
        encode=encode,
        encode_video_only=encode_video_only,
        png_bytes=png_bytes,
        speech_signal=speech_signal,
        tone=tone,
        CountingReader=CountingReader,
    )


_encoded: dict[tuple[str, float], bytes] = {}


@pytest.fixture(scope="session")
def encoded() -> Callable[[str, float], bytes]:
    """``encoded(kind_id, seconds)``: bytes of a speech file in that format (cached for the session)."""

    def get(kind_id: str, seconds: float = 3.0) -> bytes:
        key = (kind_id, seconds)
        if key not in _encoded:
            _encoded[key] = encode(KIND_BY_ID[kind_id], seconds)
        return _encoded[key]

    return get
