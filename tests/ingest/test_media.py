"""probe / normalize / ingest_file on real encoded files and on the ways uploads go wrong."""

from __future__ import annotations

import io
import random
import wave
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import pytest

from speakerline.audio import (
    MediaInfo,
    MediaLimits,
    NormalizedAudio,
    Rejection,
    ingest_file,
    normalize,
    probe,
)

TOLERANCE_S = 0.05


def _ingest(
    data: bytes, tmp_path: Path, limits: MediaLimits | None = None, size: int | None = None
) -> NormalizedAudio | Rejection:
    return ingest_file(io.BytesIO(data), len(data) if size is None else size, tmp_path / "out.wav", limits)


def _read_wav(path: Path):
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        samples = np.frombuffer(wav.readframes(params.nframes), dtype="<i2")
    return samples, params


def _rejection(result: object) -> Rejection:
    assert isinstance(result, Rejection), result
    assert result.message.endswith("."), result.message
    return result


def _code(result: object) -> str:
    code: str = _rejection(result).code
    return code


# ---------------------------------------------------------------------------------------------------------
# Happy paths
# ---------------------------------------------------------------------------------------------------------


def test_every_format_normalizes_to_16k_mono_with_the_right_duration(kit, encoded, kind_id, tmp_path):
    kind = kit.KIND_BY_ID[kind_id]
    result = _ingest(encoded(kind_id, 3.0), tmp_path)

    assert isinstance(result, NormalizedAudio), result
    assert (result.sample_rate, result.channels) == (16000, 1)
    assert result.duration_s == pytest.approx(3.0, abs=TOLERANCE_S)
    assert result.source_format == kind.expected_format
    assert result.source_codec == kind.expected_codec
    assert result.source_sample_rate == kind.rate
    assert result.source_channels == kind.channels
    assert result.bad_packets == 0
    assert result.path is not None

    samples, params = _read_wav(result.path)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 16000)
    assert params.nframes == len(samples) == round(result.duration_s * 16000)
    assert result.size_bytes == result.path.stat().st_size == 44 + 2 * len(samples)
    assert np.abs(samples).max() > 3000  # the speech survived (not silence)


def test_probe_reports_stream_facts(encoded):
    data = encoded("m4a_aac", 3.0)
    info = probe(io.BytesIO(data), len(data), MediaLimits())
    assert isinstance(info, MediaInfo)
    assert (info.format, info.codec, info.sample_rate, info.channels) == ("mp4", "aac", 44100, 2)
    assert info.duration_s == pytest.approx(3.0, abs=TOLERANCE_S)
    assert not info.duration_is_estimate
    assert info.size_bytes == len(data)


@pytest.mark.parametrize("kind_id_", ["wav", "flac", "m4a_aac", "ogg_opus"])
def test_signal_content_is_preserved(kit, kind_id_, tmp_path):
    """A 1 kHz tone stays a 1 kHz tone at the right level (resampling and downmix are right)."""
    kind = kit.KIND_BY_ID[kind_id_]
    data = kit.encode(kind, 2.0, signal=kit.tone(2.0, kind.rate, 1000.0, 0.5))
    result = _ingest(data, tmp_path)
    assert isinstance(result, NormalizedAudio), result
    assert result.path is not None
    samples, _ = _read_wav(result.path)
    middle = samples[4000:-4000].astype(np.float64) / 32768
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    peak_hz = np.argmax(spectrum) * 16000 / len(middle)
    assert peak_hz == pytest.approx(1000, abs=5)
    rms = np.sqrt(np.mean(middle**2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.1)  # stereo L=R downmixes without gain change


def test_wrong_extension_and_content_type_do_not_matter(encoded, tmp_path):
    """An MP3 saved as recording.wav is still read as MP3: only the bytes are looked at."""
    misnamed = tmp_path / "recording.wav"
    misnamed.write_bytes(encoded("mp3", 3.0))
    with misnamed.open("rb") as src:
        result = ingest_file(src, misnamed.stat().st_size, tmp_path / "out.wav", MediaLimits())
    assert isinstance(result, NormalizedAudio), result
    assert result.source_format == "mp3"
    assert result.duration_s == pytest.approx(3.0, abs=TOLERANCE_S)


def test_id3_prefixed_flac_and_big_id3_tag_mp3(encoded, tmp_path):
    flac = encoded("flac", 1.0)
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, 0, 100]) + b"\x00" * 100
    result = _ingest(tag + flac, tmp_path)
    assert isinstance(result, NormalizedAudio) and result.source_format == "flac", result

    # 200 KB of tag (cover art): the sniffer looks past it
    body = 200_000
    size = bytes((body >> s) & 0x7F for s in (21, 14, 7, 0))
    mp3 = encoded("mp3", 1.0)
    big = b"ID3\x04\x00\x00" + size + b"\x00" * body + mp3
    result = _ingest(big, tmp_path)
    assert isinstance(result, NormalizedAudio) and result.source_format == "mp3", result
    big_flac = b"ID3\x04\x00\x00" + size + b"\x00" * body + flac
    result = _ingest(big_flac, tmp_path)
    assert isinstance(result, NormalizedAudio) and result.source_format == "flac", result


def test_sample_rate_change_mid_stream(kit, tmp_path):
    """Two MP3s joined (44.1 kHz then 22.05 kHz): the resampler is rebuilt, nothing is lost."""
    kind = kit.KIND_BY_ID["mp3"]
    opts = {"id3v2_version": "0", "write_xing": "0"}
    first = kit.encode(kind, 2.0, muxer_options=opts)
    second = kit.encode(kind, 2.0, muxer_options=opts, rate=22050)
    result = _ingest(first + second, tmp_path)
    assert isinstance(result, NormalizedAudio), result
    assert result.duration_s == pytest.approx(4.0, abs=0.1)


def test_normalize_into_a_seekable_file_object(encoded):
    data = encoded("flac", 2.0)
    info = probe(io.BytesIO(data), len(data), MediaLimits())
    assert isinstance(info, MediaInfo)
    out = io.BytesIO()
    result = normalize(io.BytesIO(data), out, info, MediaLimits())
    assert isinstance(result, NormalizedAudio) and result.path is None
    assert result.size_bytes == len(out.getvalue())
    with wave.open(io.BytesIO(out.getvalue())) as wav:
        assert wav.getnframes() == 32000


def test_normalize_refuses_an_unseekable_destination(encoded):
    class Pipe(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

    data = encoded("flac", 1.0)
    info = probe(io.BytesIO(data), len(data), MediaLimits())
    assert isinstance(info, MediaInfo)
    with pytest.raises(ValueError, match="seekable"):
        normalize(io.BytesIO(data), cast(BinaryIO, Pipe()), info, MediaLimits())


def test_optional_formats_can_be_enabled(kit, tmp_path):
    kind = kit.KIND_BY_ID["wav"]
    aiff = kit.encode(replace(kind, muxer="aiff", codec="pcm_s16be"), 1.0)
    assert _code(_ingest(aiff, tmp_path)) == "unsupported_format"
    limits = MediaLimits(allowed_formats=frozenset({"aiff"}))
    result = _ingest(aiff, tmp_path, limits)
    assert isinstance(result, NormalizedAudio) and result.source_format == "aiff", result


# ---------------------------------------------------------------------------------------------------------
# Rejections
# ---------------------------------------------------------------------------------------------------------


def test_empty_file(tmp_path):
    assert _code(_ingest(b"", tmp_path)) == "empty_file"
    # stated size says otherwise, but nothing can be read
    assert _code(_ingest(b"", tmp_path, size=1234)) == "empty_file"


def test_too_large_by_stated_size(encoded, tmp_path):
    data = encoded("wav", 1.0)
    result = _ingest(data, tmp_path, size=int(4.3 * 1024**3))
    assert _code(result) == "file_too_large"
    assert _rejection(result).message == "The file is 4.3 GB; the limit is 4 GB."


def test_too_large_when_the_stated_size_lies(encoded, tmp_path):
    data = encoded("wav", 3.0)  # ~530 KB
    limits = MediaLimits(max_bytes=200_000)
    assert _code(_ingest(data, tmp_path, limits, size=1000)) == "file_too_large"
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize(
    "data",
    [
        b"speaker,start,end\nalice,0.0,1.5\nbob,1.5,3.0\n" * 20,
        b"<!doctype html><html><body>Not found</body></html>",
        b"%PDF-1.4\n" + b"\x00" * 100,
    ],
    ids=["csv", "html", "pdf"],
)
def test_non_audio_documents(data, tmp_path):
    result = _ingest(data, tmp_path)
    assert _code(result) == "unsupported_format"


def test_png_is_named_in_the_message(kit, tmp_path):
    result = _ingest(kit.png_bytes(), tmp_path)
    assert _code(result) == "unsupported_format"
    assert "PNG image" in _rejection(result).message


def test_random_garbage(tmp_path):
    rng = random.Random(99)
    assert _code(_ingest(bytes(rng.randrange(256) for _ in range(50_000)), tmp_path)) == "unsupported_format"


@pytest.mark.parametrize("magic", [b"RIFF\x00\x10\x00\x00WAVE", b"fLaC", b"OggS", b"\x00\x00\x00\x18ftypM4A "])
def test_audio_magic_followed_by_garbage(magic, tmp_path):
    rng = random.Random(5)
    data = magic + bytes(rng.randrange(256) for _ in range(20_000))
    assert _code(_ingest(data, tmp_path)) == "undecodable"


@pytest.mark.parametrize(("kind_id_", "keep"), [("wav", 60), ("flac", 100), ("m4a_aac", 0.5), ("webm_opus", 80)])
def test_truncated_files(encoded, kind_id_, keep, tmp_path):
    data = encoded(kind_id_, 3.0)
    cut = data[: int(len(data) * keep)] if isinstance(keep, float) else data[:keep]
    assert _code(_ingest(cut, tmp_path)) == "undecodable"


def test_truncated_mp3_with_exact_duration_is_undecodable(encoded, tmp_path):
    data = encoded("mp3", 3.0)  # the Xing header declares 3.0 s
    assert _code(_ingest(data[: len(data) * 4 // 10], tmp_path)) == "undecodable"
    # ... unless the check is off: then the part that is there is used
    result = _ingest(data[: len(data) * 4 // 10], tmp_path, MediaLimits(min_decoded_fraction=0))
    assert isinstance(result, NormalizedAudio), result
    assert 0.9 < result.duration_s < 1.4


def test_a_few_corrupt_packets_are_tolerated(encoded, tmp_path):
    data = bytearray(encoded("m4a_aac", 10.0))
    rng = random.Random(3)
    start = len(data) // 3
    data[start : start + 1500] = bytes(rng.randrange(256) for _ in range(1500))
    result = _ingest(bytes(data), tmp_path)
    assert isinstance(result, NormalizedAudio), result
    assert result.duration_s == pytest.approx(10.0, abs=0.5)


def test_heavy_corruption_is_undecodable(encoded, tmp_path):
    data = bytearray(encoded("m4a_aac", 10.0))
    rng = random.Random(4)
    start, end = len(data) // 4, 3 * len(data) // 4
    data[start:end] = bytes(rng.randrange(256) for _ in range(end - start))
    result = _ingest(bytes(data), tmp_path)
    assert _code(result) == "undecodable"
    assert "corrupt" in _rejection(result).message
    assert not (tmp_path / "out.wav").exists()


def test_video_without_audio(kit, tmp_path):
    result = _ingest(kit.encode_video_only(), tmp_path)
    assert _code(result) == "no_audio_stream"


def test_disallowed_codec(encoded, tmp_path):
    limits = MediaLimits(allowed_codecs=frozenset({"opus", "flac"}))
    result = _ingest(encoded("m4a_aac", 1.0), tmp_path, limits)
    assert _code(result) == "unsupported_format"
    assert "aac" in _rejection(result).message
    # Ogg's codec is known from the first page, before FFmpeg is involved
    assert _code(_ingest(encoded("ogg_vorbis", 1.0), tmp_path, limits)) == "unsupported_format"


def test_too_short(kit, tmp_path):
    data = kit.encode(kit.KIND_BY_ID["flac"], 0.3)
    result = _ingest(data, tmp_path)
    assert _code(result) == "too_short"
    assert "0.3 s" in _rejection(result).message
    assert not (tmp_path / "out.wav").exists()


def test_too_long_from_the_declared_duration(encoded, tmp_path):
    data = encoded("flac", 3.0)
    reader_limits = MediaLimits(min_duration_s=0.1, max_duration_s=2.0)
    info = probe(io.BytesIO(data), len(data), reader_limits)
    assert _code(info) == "too_long"
    assert _rejection(info).message == "The recording is 3.0 s long; the limit is 2.0 s."


def test_too_long_stops_decoding_early(kit, encoded, tmp_path):
    """Without a declared duration (streamed WebM), the limit is enforced while decoding and reading stops."""
    data = kit.encode(kit.KIND_BY_ID["webm_opus"], 60.0, muxer_options={"live": "1"})
    info = probe(io.BytesIO(data), len(data), MediaLimits())
    assert isinstance(info, MediaInfo) and info.duration_s is None, info

    reader = kit.CountingReader(data)
    limits = MediaLimits(max_duration_s=5.0)
    result = normalize(cast(BinaryIO, reader), tmp_path / "out.wav", info, limits)
    assert _code(result) == "too_long"
    assert reader.bytes_read < len(data) * 0.3
    assert not (tmp_path / "out.wav").exists()


def test_source_io_errors_propagate_instead_of_rejecting(kit, encoded, tmp_path):
    data = encoded("flac", 3.0)
    info = probe(io.BytesIO(data), len(data), MediaLimits())
    assert isinstance(info, MediaInfo)
    reader = kit.CountingReader(data, fail_after=len(data) // 2)
    with pytest.raises(ConnectionResetError):
        normalize(cast(BinaryIO, reader), tmp_path / "out.wav", info, MediaLimits())
    assert not (tmp_path / "out.wav").exists()


def test_limits_are_validated():
    with pytest.raises(ValueError, match="unknown formats"):
        MediaLimits(allowed_formats=frozenset({"wav", "wma"}))
    with pytest.raises(ValueError):
        MediaLimits(min_duration_s=10, max_duration_s=5)
    with pytest.raises(ValueError):
        MediaLimits(max_bytes=0)


def _flac_declaring(flac: bytes, seconds: float) -> bytes:
    """``flac`` with its STREAMINFO total-samples field rewritten to declare ``seconds`` of audio."""
    assert flac[:4] == b"fLaC" and flac[4] & 0x7F == 0  # STREAMINFO comes first
    packed = int.from_bytes(flac[18:26], "big")  # sample rate (20 bits) ... total samples (36 bits)
    sample_rate = packed >> 44
    packed = (packed & ~((1 << 36) - 1)) | int(seconds * sample_rate)
    return flac[:18] + packed.to_bytes(8, "big") + flac[26:]


def test_the_default_limit_is_24_hours(encoded):
    """All-day recordings are accepted; beyond 24 h the declared duration alone rejects the file."""
    flac = encoded("flac", 1.0)
    within = _flac_declaring(flac, 23.9 * 3600)
    info = probe(io.BytesIO(within), len(within), MediaLimits())
    assert isinstance(info, MediaInfo) and info.duration_s == pytest.approx(23.9 * 3600), info
    beyond = _flac_declaring(flac, 24.5 * 3600)
    rejected = probe(io.BytesIO(beyond), len(beyond), MediaLimits())
    assert _code(rejected) == "too_long"
    assert _rejection(rejected).message == "The recording is 24 h 30 min long; the limit is 24 h."
