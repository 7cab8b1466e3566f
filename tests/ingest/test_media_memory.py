"""Normalizing a long input keeps memory bounded: nothing proportional to the input's duration is held.

The inputs are generated on the fly by file-like objects (nothing on disk, nothing whole in memory):
30 minutes of 44.1 kHz stereo WAV (~320 MB) and 20 minutes of MP3 made by repeating a 10 s chunk of frames.
Resident memory is sampled from inside ``read()``, i.e. while FFmpeg is demuxing and decoding.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import pytest

from speakerline.audio import MediaInfo, MediaLimits, NormalizedAudio, normalize, probe

_STATM = Path("/proc/self/statm")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MAX_GROWTH_BYTES = 16 * 1024 * 1024  # a 30 min output leak would be 55 MiB

pytestmark = [pytest.mark.skipif(not _STATM.exists(), reason="needs /proc/self/statm (Linux)"), pytest.mark.slow]


def _rss() -> int:
    return int(_STATM.read_text().split()[1]) * _PAGE


class GeneratedFile:
    """A read-only, seekable virtual file: ``header`` then ``body`` repeated up to ``size`` bytes."""

    def __init__(self, header: bytes, body: bytes, size: int) -> None:
        self._header = header
        self._body = body * 2  # so any read of up to len(body) bytes is one slice
        self._period = len(body)
        self._size = size
        self._pos = 0
        self._reads = 0
        self.peak_rss = 0

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        self._reads += 1
        if self._reads % 16 == 0:
            self.peak_rss = max(self.peak_rss, _rss())
        end = self._size if n < 0 else min(self._size, self._pos + n)
        out = bytearray()
        while self._pos < end:
            if self._pos < len(self._header):
                piece = self._header[self._pos : end]
            else:
                offset = (self._pos - len(self._header)) % self._period
                piece = self._body[offset : offset + min(end - self._pos, self._period)]
            out += piece
            self._pos += len(piece)
        return bytes(out)


def _wav_source(seconds: int, rate: int = 44100, channels: int = 2) -> GeneratedFile:
    data_len = seconds * rate * channels * 2
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + data_len)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
        + b"data"
        + struct.pack("<I", data_len)
    )
    t = np.arange(rate) / rate  # one second, repeated
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype("<i2")
    return GeneratedFile(header, np.repeat(pcm, channels).tobytes(), len(header) + data_len)


def _mp3_source(kit, seconds: int) -> tuple[GeneratedFile, float]:
    """Repeat a 10 s chunk of bare MP3 frames (no ID3/Xing, no bit reservoir: chunks join cleanly)."""
    kind = kit.KIND_BY_ID["mp3"]
    chunk = kit.encode(
        type(kind)("mp3_norsv", "mp3", "libmp3lame", 44100, 2, "mp3", "mp3", (("reservoir", "0"),)),
        10.0,
        muxer_options={"id3v2_version": "0", "write_xing": "0"},
    )
    repeats = seconds // 10
    return GeneratedFile(b"", chunk, len(chunk) * repeats), repeats * 10.0


def _normalize_measured(src: GeneratedFile, size: int, tmp_path: Path) -> tuple[NormalizedAudio, int]:
    limits = MediaLimits()
    info = probe(cast(BinaryIO, src), size, limits)
    assert isinstance(info, MediaInfo), info
    baseline = _rss()
    src.peak_rss = baseline
    result = normalize(cast(BinaryIO, src), tmp_path / "long.wav", info, limits)
    assert isinstance(result, NormalizedAudio), result
    print(f"RSS growth {(src.peak_rss - baseline) / 2**20:.1f} MiB for {result.duration_s:.0f} s")
    return result, src.peak_rss - baseline


@pytest.fixture(scope="module", autouse=True)
def _warm_up(kit, tmp_path_factory):
    """One short run first, so one-time allocations (codec tables, imports) don't count as growth."""
    tmp = tmp_path_factory.mktemp("warm")
    _normalize_measured(_wav_source(5), _wav_source(5).seek(0, os.SEEK_END), tmp)
    src, _ = _mp3_source(kit, 10)
    _normalize_measured(src, src.seek(0, os.SEEK_END), tmp)


def test_30_minutes_of_wav_in_bounded_memory(tmp_path):
    src = _wav_source(30 * 60)
    size = src.seek(0, os.SEEK_END)
    assert size > 300_000_000
    result, growth = _normalize_measured(src, size, tmp_path)
    assert result.duration_s == pytest.approx(1800.0, abs=0.05)
    assert result.size_bytes == 44 + 1800 * 16000 * 2
    assert growth < MAX_GROWTH_BYTES, f"RSS grew by {growth / 2**20:.1f} MiB"


def test_20_minutes_of_mp3_in_bounded_memory(kit, tmp_path):
    src, seconds = _mp3_source(kit, 20 * 60)
    size = src.seek(0, os.SEEK_END)
    result, growth = _normalize_measured(src, size, tmp_path)
    assert result.duration_s == pytest.approx(seconds, rel=0.01)  # + each chunk's encoder delay/padding
    assert result.bad_packets == 0
    assert growth < MAX_GROWTH_BYTES, f"RSS grew by {growth / 2**20:.1f} MiB"
