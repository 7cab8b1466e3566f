"""Probe: size, sniffed format, audio stream, codec and a first decoded frame, before any normalizing.

Also the container reading that :mod:`.normalizing` shares: the size-guarded source, opening with the sniffed
demuxer forced, and packet decoding that tolerates some corrupt packets.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

import av
import av.container
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream

from speakerline.audio.limits import (
    _DEMUXERS,
    _DESCRIPTIONS,
    _LABELS,
    DECODABLE_FORMATS,
    MediaInfo,
    MediaLimits,
    Rejection,
    Sniffed,
    _too_large,
    _too_long,
    _too_short,
    _undecodable_open,
)
from speakerline.audio.sniffing import SNIFF_BYTES, _id3v2_length, _sniff_after_id3, sniff


class _SourceTooLarge(Exception):
    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


class _GuardedSource:
    """File-like view of the source that stops reading past ``limit`` bytes (a stated size can be wrong)."""

    def __init__(self, src: BinaryIO, limit: int) -> None:
        self._src = src
        self._limit = limit
        self._pos = src.tell() if src.seekable() else 0

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = self._limit + 1 - self._pos
        data = self._src.read(n)
        self._pos += len(data)
        if self._pos > self._limit:
            raise _SourceTooLarge(self._pos)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        pos = self._src.seek(offset, whence)
        self._pos = pos if pos is not None else self._src.tell()
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return self._src.seekable()


def _open(src: _GuardedSource, fmt: str) -> av.container.InputContainer:
    return av.open(src, mode="r", format=_DEMUXERS[fmt], metadata_errors="replace")


def probe(src: BinaryIO, size_bytes: int, limits: MediaLimits | None = None) -> MediaInfo | Rejection:
    """Check size, format, audio stream, codec and decodability of ``src`` (read from its start).

    ``src`` must support ``read``, ``seek`` and ``tell``. Source I/O errors propagate; everything wrong
    with the data comes back as a :class:`Rejection`.
    """
    limits = limits or MediaLimits()
    if size_bytes <= 0:
        return Rejection("empty_file", "The file is empty (0 bytes).")
    if size_bytes > limits.max_bytes:
        return _too_large(size_bytes, limits)

    src.seek(0)
    head = src.read(SNIFF_BYTES)
    if not head:
        return Rejection("empty_file", "The file is empty (0 bytes).")
    sniffed = sniff(head)
    tag_len = _id3v2_length(head)
    if tag_len is not None and tag_len + 1024 > len(head):
        # A big ID3v2 tag (cover art) hides what follows: sniff past it.
        src.seek(tag_len)
        sniffed = _sniff_after_id3(src.read(SNIFF_BYTES)) or sniffed
    rejection = _check_format(sniffed, limits)
    if rejection is not None:
        return rejection
    assert sniffed is not None
    fmt = sniffed.format

    src.seek(0)
    guarded = _GuardedSource(src, limits.max_bytes)
    try:
        with _open(guarded, fmt) as container:
            return _probe_container(container, fmt, size_bytes, limits)
    except _SourceTooLarge as exc:
        return _too_large(exc.position, limits)
    except av.FFmpegError as exc:
        return _undecodable_open(fmt, exc)


def _check_format(sniffed: Sniffed | None, limits: MediaLimits) -> Rejection | None:
    allowed = ", ".join(_LABELS[f] for f in sorted(limits.allowed_formats))
    if sniffed is None:
        return Rejection(
            "unsupported_format",
            f"The file's content is not a recognised audio format. Supported formats: {allowed}.",
        )
    what = _DESCRIPTIONS.get(sniffed.format, sniffed.format)
    if sniffed.format not in limits.allowed_formats:
        kind = "audio format" if sniffed.format in DECODABLE_FORMATS else "audio file"
        return Rejection(
            "unsupported_format",
            f"The file is {what}, which is not a supported {kind}. Supported formats: {allowed}.",
        )
    # Theora (video) or Skeleton first: the audio stream, if any, is checked after opening.
    if sniffed.codec not in (None, "theora", "skeleton") and sniffed.codec not in limits.allowed_codecs:
        return Rejection(
            "unsupported_format",
            f"The file is {what} with {sniffed.codec} audio, which is not supported.",
        )
    return None


def _probe_container(
    container: av.container.InputContainer, fmt: str, size_bytes: int, limits: MediaLimits
) -> MediaInfo | Rejection:
    what = _DESCRIPTIONS.get(fmt, fmt)
    if not container.streams.audio:
        return Rejection("no_audio_stream", f"The file is {what} but contains no audio.")
    best = container.streams.best("audio")
    stream = best if isinstance(best, AudioStream) else container.streams.audio[0]
    codec = _codec_name(stream)
    if codec is None or codec not in limits.allowed_codecs:
        shown = codec or "an unknown codec"
        return Rejection(
            "unsupported_format",
            f"The audio in this file ({what}) is encoded with {shown}, which is not supported.",
        )

    duration_s, exact = _declared_duration(container, stream, fmt)
    if exact and duration_s is not None and duration_s > limits.max_duration_s:
        return _too_long(limits, duration_s)

    first = _first_frame(container, stream, limits)
    if isinstance(first, Rejection):
        return first
    if first is None:
        return _too_short(limits, 0.0)
    ctx = stream.codec_context
    bit_rate = ctx.bit_rate or container.bit_rate or None
    return MediaInfo(
        format=fmt,
        codec=codec,
        sample_rate=first.sample_rate or ctx.sample_rate,
        channels=first.layout.nb_channels or ctx.channels,
        duration_s=duration_s,
        duration_is_estimate=not exact and duration_s is not None,
        stream_index=stream.index,
        size_bytes=size_bytes,
        bit_rate=bit_rate,
    )


def _codec_name(stream: AudioStream) -> str | None:
    try:
        return stream.codec_context.codec.canonical_name
    except (av.FFmpegError, ValueError, AttributeError):  # no decoder in this FFmpeg build
        return None


def _declared_duration(
    container: av.container.InputContainer, stream: AudioStream, fmt: str
) -> tuple[float | None, bool]:
    """(duration in seconds or None, whether it is exact rather than guessed from the bit rate)."""
    if stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        return float(stream.duration * stream.time_base), True
    if container.duration is not None and container.duration > 0:
        # Stream-less durations come from headers (Matroska's Duration) except for MP3/ADTS, where FFmpeg
        # extrapolates from the first frames' bit rate and can be far off for VBR.
        return container.duration / av.time_base, fmt not in ("mp3", "aac")
    return None, False


class _Decode:
    """Packet-level decoding with ffmpeg-like tolerance for corrupt packets."""

    def __init__(self, container: av.container.InputContainer, stream: AudioStream, limits: MediaLimits) -> None:
        self._container = container
        self._stream = stream
        self._limits = limits
        self.packets = 0
        self.bad_packets = 0

    def frames(self) -> Iterator[AudioFrame]:
        """Yield decoded frames; raise :class:`_Corrupt` when the data is too broken to go on."""
        ctx = self._stream.codec_context
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except av.FFmpegError as exc:  # the demuxer gave up mid-stream
                raise _Corrupt(f"the container is corrupt after {self.packets} packets ({exc.strerror})") from exc
            self.packets += 1
            try:
                frames = ctx.decode(packet)
            except av.FFmpegError as exc:
                self.bad_packets += 1
                tolerated = max(self._limits.max_bad_packets, self._limits.max_bad_packet_fraction * self.packets)
                if self.bad_packets > tolerated:
                    raise _Corrupt(
                        f"{self.bad_packets} of {self.packets} packets are corrupt ({exc.strerror})"
                    ) from exc
                continue
            yield from frames


class _Corrupt(Exception):
    pass


def _first_frame(
    container: av.container.InputContainer, stream: AudioStream, limits: MediaLimits
) -> AudioFrame | Rejection | None:
    decoder = _Decode(container, stream, limits)
    try:
        for frame in decoder.frames():
            if frame.samples > 0:
                return frame
    except _Corrupt as exc:
        return Rejection("undecodable", f"The audio could not be decoded: {exc}.")
    if decoder.bad_packets:
        return Rejection("undecodable", "The file contains no decodable audio.")
    return None
