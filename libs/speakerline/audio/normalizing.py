"""Normalize: stream-decode a probed input into a 16 kHz mono PCM16 WAV, frame by frame; and the
convenience functions that probe then normalize (:func:`ingest_file`, :func:`normalize_file`)."""

from __future__ import annotations

import contextlib
import math
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import structlog
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream

from speakerline.audio.limits import (
    _SAMPLE_WIDTH,
    _WAV_HEADER_BYTES,
    TARGET_CHANNELS,
    TARGET_SAMPLE_RATE,
    MediaInfo,
    MediaLimits,
    NormalizedAudio,
    Rejection,
    _fmt_duration,
    _too_large,
    _too_long,
    _too_short,
    _undecodable_open,
)
from speakerline.audio.probing import _Corrupt, _Decode, _GuardedSource, _open, _SourceTooLarge, probe

log = structlog.get_logger(__name__)


def normalize(
    src: BinaryIO, dst: Path | BinaryIO, info: MediaInfo, limits: MediaLimits | None = None
) -> NormalizedAudio | Rejection:
    """Stream-decode ``src`` (as probed into ``info``) into a 16 kHz mono PCM16 WAV at ``dst``.

    ``dst`` is a path (created/overwritten; removed again on rejection or error) or a writable, *seekable*
    binary file object (the WAV header is patched at the end). Memory use is O(frame); disk use is at most
    ``max_duration_s`` x 32 kB/s plus the header.
    """
    limits = limits or MediaLimits()
    if isinstance(dst, Path):
        try:
            with dst.open("wb") as fh:
                result = _normalize_into(src, fh, info, limits)
        except BaseException:
            dst.unlink(missing_ok=True)
            raise
        if isinstance(result, Rejection):
            dst.unlink(missing_ok=True)
            return result
        return NormalizedAudio(
            path=dst,
            duration_s=result.duration_s,
            size_bytes=dst.stat().st_size,
            source_format=info.format,
            source_codec=info.codec,
            source_sample_rate=info.sample_rate,
            source_channels=info.channels,
            bad_packets=result.bad_packets,
        )
    if not dst.seekable():
        raise ValueError("dst must be seekable (normalize to a local file, then upload it)")
    result = _normalize_into(src, dst, info, limits)
    if isinstance(result, Rejection):
        return result
    return NormalizedAudio(
        path=None,
        duration_s=result.duration_s,
        size_bytes=_WAV_HEADER_BYTES + result.samples * _SAMPLE_WIDTH,
        source_format=info.format,
        source_codec=info.codec,
        source_sample_rate=info.sample_rate,
        source_channels=info.channels,
        bad_packets=result.bad_packets,
    )


@dataclass
class _Written:
    samples: int = 0
    bad_packets: int = 0

    @property
    def duration_s(self) -> float:
        return self.samples / TARGET_SAMPLE_RATE


def _normalize_into(src: BinaryIO, out: BinaryIO, info: MediaInfo, limits: MediaLimits) -> _Written | Rejection:
    src.seek(0)
    guarded = _GuardedSource(src, limits.max_bytes)
    max_samples = math.floor(limits.max_duration_s * TARGET_SAMPLE_RATE)
    written = _Written()
    try:
        with _open(guarded, info.format) as container, contextlib.closing(wave.open(out, "wb")) as wav:
            wav.setnchannels(TARGET_CHANNELS)
            wav.setsampwidth(_SAMPLE_WIDTH)
            wav.setframerate(TARGET_SAMPLE_RATE)
            stream = container.streams[info.stream_index]
            if not isinstance(stream, AudioStream):
                raise ValueError(f"stream {info.stream_index} is not an audio stream; was info probed from src?")
            decoder = _Decode(container, stream, limits)
            resampler: AudioResampler | None = None
            source_key: tuple[str, str, int] | None = None

            def emit(frames: list[AudioFrame]) -> bool:
                """Append resampled frames; False once the duration limit is passed."""
                for out_frame in frames:
                    n = out_frame.samples
                    if n <= 0:
                        continue
                    wav.writeframesraw(memoryview(out_frame.planes[0])[: n * _SAMPLE_WIDTH])
                    written.samples += n
                    if written.samples > max_samples:
                        return False
                return True

            try:
                for frame in decoder.frames():
                    if frame.samples <= 0:
                        continue
                    key = (frame.format.name, frame.layout.name, frame.sample_rate)
                    if key != source_key:
                        # First frame, or the stream changed parameters mid-way (chained Ogg, joined MP3s).
                        if resampler is not None and not emit(resampler.resample(None)):
                            return _too_long(limits, None)
                        resampler = AudioResampler(format="s16", layout="mono", rate=TARGET_SAMPLE_RATE)
                        source_key = key
                    assert resampler is not None
                    frame.pts = None  # we count samples; timestamps gaps/jumps must not make the filter pad
                    if not emit(resampler.resample(frame)):
                        return _too_long(limits, None)
                if resampler is not None and not emit(resampler.resample(None)):
                    return _too_long(limits, None)
            except _Corrupt as exc:
                return Rejection("undecodable", f"The audio could not be decoded: {exc}.")
            finally:
                written.bad_packets = decoder.bad_packets
    except _SourceTooLarge as exc:
        return _too_large(exc.position, limits)
    except av.FFmpegError as exc:
        return _undecodable_open(info.format, exc)

    if written.bad_packets:
        log.warning(
            "media.bad_packets_skipped",
            bad_packets=written.bad_packets,
            format=info.format,
            codec=info.codec,
        )
    duration = written.duration_s
    if written.samples == 0 and written.bad_packets:
        return Rejection("undecodable", "The file contains no decodable audio.")
    if (
        info.duration_s is not None
        and not info.duration_is_estimate
        and duration < limits.min_decoded_fraction * info.duration_s
    ):
        return Rejection(
            "undecodable",
            f"Only {_fmt_duration(duration)} of the {_fmt_duration(info.duration_s)} the file declares could "
            "be decoded; it is probably truncated or corrupt.",
        )
    if duration < limits.min_duration_s:
        return _too_short(limits, duration)
    return written


# --------------------------------------------------------------------------------------------------------
# Convenience
# --------------------------------------------------------------------------------------------------------


def ingest_file(
    src: BinaryIO, size_bytes: int, dst_path: Path | BinaryIO, limits: MediaLimits | None = None
) -> NormalizedAudio | Rejection:
    """:func:`probe` then :func:`normalize`: the whole validation + normalization of one upload."""
    limits = limits or MediaLimits()
    info = probe(src, size_bytes, limits)
    if isinstance(info, Rejection):
        return info
    return normalize(src, dst_path, info, limits)


def normalize_file(src: Path, dst: Path, limits: MediaLimits | None = None) -> NormalizedAudio | Rejection:
    """:func:`ingest_file` for a local file: validate ``src`` and write its 16 kHz mono PCM16 WAV to ``dst``.

    ``OSError`` from reading ``src`` propagates (as for any source); problems with the data are a :class:`Rejection`.
    """
    with src.open("rb") as fh:
        return ingest_file(fh, src.stat().st_size, dst, limits)
