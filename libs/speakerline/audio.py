"""Audio validation and normalization: any accepted upload to the 16 kHz mono PCM16 WAV the engines read.

Pure media logic: no GCS, no Pub/Sub. Shared so that everything that feeds an engine decodes the same way: the
ingest service (``ingest.media`` re-exports this module) and the diarization service's evaluation
(``speakerline eval``). The caller hands in a readable, seekable ``BinaryIO`` (for example ``blob.open("rb")``)
plus the object's size, and gets back either a :class:`NormalizedAudio` (a 16 kHz mono PCM16 WAV on local disk,
ready to upload) or a :class:`Rejection` that can be shown to the uploader. :func:`normalize_file` does the same
for a local file.

Pipeline
--------
1. :func:`probe` checks the size, sniffs the format from the file's first bytes (never the name or the
   claimed content type), opens the container with PyAV *forcing the sniffed demuxer* (so FFmpeg never
   auto-probes into playlist/concat demuxers that could open other files), picks the audio stream, checks
   the codec and decodes the first frame.
2. :func:`normalize` decodes packet by packet, resamples each frame with PyAV's ``AudioResampler`` to
   s16 / mono / 16 kHz and appends it to a WAV file. Memory stays O(frame) whatever the input duration;
   the output is bounded by ``max_duration_s`` (decoding stops as soon as the limit is passed).
3. :func:`ingest_file` runs both; :func:`normalize_file` runs it on a local path.

Rejection codes (stable, machine-readable; :attr:`Rejection.message` is a sentence for people)
-----------------------------------------------------------------------------------------------
``empty_file``
    The object has zero bytes.
``file_too_large``
    The object is larger than ``MediaLimits.max_bytes`` (checked against the stated size, and again while
    reading in case the stated size was wrong).
``unsupported_format``
    The content is not a recognised audio container (text, images, archives, random bytes...), is a
    recognised one that is not in ``MediaLimits.allowed_formats`` (e.g. AIFF, CAF by default), or its
    audio codec is not in ``MediaLimits.allowed_codecs``.
``no_audio_stream``
    The container is valid but holds no audio stream (e.g. a video-only MP4).
``undecodable``
    The container or the audio in it cannot be decoded: broken or truncated headers, no decodable frame,
    too many corrupt packets, a demuxer error mid-stream, or much less audio than the container declares.
``too_short``
    The decoded audio is shorter than ``MediaLimits.min_duration_s``.
``too_long``
    The audio is longer than ``MediaLimits.max_duration_s`` (from the container's exact duration when it
    has one, else found while decoding).

Reading from GCS
----------------
Each of :func:`probe` and :func:`normalize` opens the container from offset 0, and FFmpeg seeks: to the end
(Ogg duration, MP3 ID3v1/APE tags, MP4 with ``moov`` last) and back. ``BlobReader`` downloads
``chunk_size`` bytes per refill (40 MiB by default, held in memory), so open it with a small one, e.g.
``blob.open("rb", chunk_size=1024 * 1024)``, to keep memory bounded and seeks cheap. It must support
``seek(0, SEEK_END)`` (``BlobReader`` does).

Errors raised by the *source* itself (network errors from a GCS reader, ``OSError``...) are not rejections:
they propagate unchanged so the caller can retry. Only FFmpeg's verdicts on the data become rejections.
"""

from __future__ import annotations

import contextlib
import math
import os
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

import av
import av.container
import structlog
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream

__all__ = [
    "DECODABLE_FORMATS",
    "DEFAULT_ALLOWED_CODECS",
    "DEFAULT_ALLOWED_FORMATS",
    "SNIFF_BYTES",
    "TARGET_CHANNELS",
    "TARGET_SAMPLE_RATE",
    "MediaInfo",
    "MediaLimits",
    "NormalizedAudio",
    "Rejection",
    "Sniffed",
    "ingest_file",
    "normalize",
    "normalize_file",
    "probe",
    "sniff",
    "sniff_format",
]

log = structlog.get_logger(__name__)

MIB: Final = 1024 * 1024
GIB: Final = 1024 * MIB
TARGET_SAMPLE_RATE: Final = 16_000
TARGET_CHANNELS: Final = 1
_SAMPLE_WIDTH: Final = 2  # PCM16
_WAV_HEADER_BYTES: Final = 44  # what the stdlib ``wave`` module writes for PCM
#: How many leading bytes :func:`probe` reads for sniffing.
SNIFF_BYTES: Final = 64 * 1024

#: Canonical format name -> FFmpeg demuxer forced when opening it. These are all the formats this module
#: can decode; which of them are accepted is ``MediaLimits.allowed_formats``.
_DEMUXERS: Final[dict[str, str]] = {
    "wav": "wav",  # RIFF/WAVE, RF64, BW64
    "mp3": "mp3",  # MPEG audio (layer 1/2/3), with or without ID3v2
    "flac": "flac",
    "ogg": "ogg",  # Vorbis, Opus (FLAC/Speex in Ogg are recognised too; the codec list decides)
    "webm": "matroska",  # EBML DocType "webm"
    "matroska": "matroska",  # EBML DocType "matroska" (.mka/.mkv)
    "mp4": "mov",  # ISO BMFF / QuickTime: .m4a, .mp4, .mov, .3gp
    "aac": "aac",  # raw ADTS AAC
    "aiff": "aiff",
    "caf": "caf",
}
DECODABLE_FORMATS: Final = frozenset(_DEMUXERS)
DEFAULT_ALLOWED_FORMATS: Final = frozenset({"wav", "mp3", "flac", "ogg", "webm", "mp4"})

#: FFmpeg canonical codec names (``avcodec_get_name``), not decoder names (``mp3`` rather than ``mp3float``).
DEFAULT_ALLOWED_CODECS: Final = frozenset(
    {
        # WAV / AIFF / CAF payloads, telephony G.711 and the ADPCMs dictaphones write
        "pcm_u8",
        "pcm_s16le",
        "pcm_s16be",
        "pcm_s24le",
        "pcm_s24be",
        "pcm_s32le",
        "pcm_s32be",
        "pcm_f32le",
        "pcm_f32be",
        "pcm_f64le",
        "pcm_f64be",
        "pcm_mulaw",
        "pcm_alaw",
        "adpcm_ima_wav",
        "adpcm_ms",
        # compressed
        "mp3",
        "mp2",
        "flac",
        "vorbis",
        "opus",
        "aac",
        "alac",
    }
)

#: How formats are listed to people.
_LABELS: Final[dict[str, str]] = {
    "wav": "WAV",
    "mp3": "MP3",
    "flac": "FLAC",
    "ogg": "Ogg (Vorbis/Opus)",
    "webm": "WebM",
    "matroska": "Matroska (MKA/MKV)",
    "mp4": "M4A/MP4 (AAC)",
    "aac": "AAC (ADTS)",
    "aiff": "AIFF",
    "caf": "CAF",
}

#: Human descriptions used in messages.
_DESCRIPTIONS: Final[dict[str, str]] = {
    "wav": "a WAV file",
    "mp3": "an MP3 file",
    "flac": "a FLAC file",
    "ogg": "an Ogg file",
    "webm": "a WebM file",
    "matroska": "a Matroska file",
    "mp4": "an MP4/M4A file",
    "aac": "a raw AAC (ADTS) file",
    "aiff": "an AIFF file",
    "caf": "a Core Audio (CAF) file",
    "avi": "an AVI file",
    "webp": "a WebP image",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "gif": "a GIF image",
    "heif": "a HEIF/AVIF image",
    "pdf": "a PDF document",
    "zip": "a ZIP archive (or an Office document)",
    "gzip": "a gzip archive",
    "midi": "a MIDI file (notes, not recorded sound)",
    "text": "a text file",
}


# --------------------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaLimits:
    """What the ingest service accepts. Defaults suit meeting/call recordings."""

    #: 24 hours of 16 kHz mono WAV (2.6 GiB) or of 320 kbit/s MP3 (3.2 GiB) fit
    max_bytes: int = 4 * GIB
    min_duration_s: float = 0.5
    #: all-day hearings and multi-hour podcasts; the diarization engine's memory does not grow with length
    max_duration_s: float = 24 * 3600.0
    allowed_formats: frozenset[str] = DEFAULT_ALLOWED_FORMATS
    allowed_codecs: frozenset[str] = DEFAULT_ALLOWED_CODECS
    #: Corrupt packets are skipped (as ffmpeg does) until there are more than
    #: ``max(max_bad_packets, max_bad_packet_fraction * packets_read)`` of them.
    max_bad_packets: int = 20
    max_bad_packet_fraction: float = 0.01
    #: When the container states an exact duration, at least this fraction of it must decode; less means the
    #: file is truncated or corrupt (``undecodable``). 0 disables the check.
    min_decoded_fraction: float = 0.9

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if not 0 <= self.min_duration_s < self.max_duration_s:
            raise ValueError("need 0 <= min_duration_s < max_duration_s")
        unknown = self.allowed_formats - DECODABLE_FORMATS
        if unknown:
            raise ValueError(f"unknown formats {sorted(unknown)}; known: {sorted(DECODABLE_FORMATS)}")
        if self.max_bad_packets < 0 or not 0 <= self.max_bad_packet_fraction <= 1:
            raise ValueError("bad-packet tolerance must be non-negative")
        if not 0 <= self.min_decoded_fraction <= 1:
            raise ValueError("min_decoded_fraction must be within [0, 1]")


@dataclass(frozen=True)
class Rejection:
    """Why a file was refused. ``code`` is one of the codes in the module docstring."""

    code: str
    message: str


@dataclass(frozen=True)
class Sniffed:
    """What the first bytes say: a format name and, for Ogg, the codec of the first logical stream."""

    format: str
    codec: str | None = None


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learned about an accepted-so-far input."""

    format: str  # canonical format name (a key of DECODABLE_FORMATS)
    codec: str  # FFmpeg canonical codec name
    sample_rate: int
    channels: int
    duration_s: float | None  # None: unknown until decoded
    duration_is_estimate: bool  # True when FFmpeg guessed it from the bit rate (MP3/ADTS without an index)
    stream_index: int
    size_bytes: int
    bit_rate: int | None = None


@dataclass(frozen=True)
class NormalizedAudio:
    """The normalized WAV and where it came from."""

    path: Path | None  # None when normalize() wrote into a caller-supplied file object
    duration_s: float
    size_bytes: int
    source_format: str
    source_codec: str
    source_sample_rate: int
    source_channels: int
    sample_rate: int = TARGET_SAMPLE_RATE
    channels: int = TARGET_CHANNELS
    bad_packets: int = 0  # corrupt packets skipped while decoding


# --------------------------------------------------------------------------------------------------------
# Sniffing
# --------------------------------------------------------------------------------------------------------


def sniff_format(head: bytes) -> str | None:
    """Name the file type from its first bytes, or ``None`` when unrecognised.

    Returns a canonical audio format (``wav``, ``mp3``, ``flac``, ``ogg``, ``webm``, ``matroska``, ``mp4``,
    ``aac``, ``aiff``, ``caf``) or a non-audio type recognised only to explain a rejection (``png``,
    ``jpeg``, ``gif``, ``webp``, ``heif``, ``avi``, ``pdf``, ``zip``, ``gzip``, ``midi``, ``text``).
    Pass at least a few KiB for MPEG-audio frame checks (see :data:`SNIFF_BYTES`).
    """
    sniffed = sniff(head)
    return sniffed.format if sniffed else None


def sniff(head: bytes) -> Sniffed | None:
    """Like :func:`sniff_format`, plus the codec named in the first Ogg page (``vorbis``, ``opus``,
    ``flac``, ``speex``, ``theora``) when the file is Ogg."""
    if len(head) < 4:
        return None
    magic4 = head[:4]
    if magic4 in (b"RIFF", b"RF64", b"BW64") and len(head) >= 12:
        kind = head[8:12]
        if kind == b"WAVE":
            return Sniffed("wav")
        if kind == b"AVI ":
            return Sniffed("avi")
        if kind == b"WEBP":
            return Sniffed("webp")
        return None
    if magic4 == b"fLaC":
        return Sniffed("flac")
    if magic4 == b"OggS":
        return Sniffed("ogg", _ogg_first_codec(head))
    if magic4 == b"\x1a\x45\xdf\xa3":
        return Sniffed("webm" if _ebml_doctype(head) == "webm" else "matroska")
    if magic4 == b"FORM" and len(head) >= 12 and head[8:12] in (b"AIFF", b"AIFC"):
        return Sniffed("aiff")
    if magic4 == b"caff":
        return Sniffed("caf")
    if magic4 == b"MThd":
        return Sniffed("midi")
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"):
            return Sniffed("heif")
        return Sniffed("mp4")
    if (
        len(head) >= 8
        and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip")
        and int.from_bytes(head[:4], "big") >= 8  # QuickTime without ftyp: a plausible first box size
    ):
        return Sniffed("mp4")
    if head[:3] == b"ID3":
        tag_len = _id3v2_length(head)
        if tag_len is not None and tag_len < len(head):
            inner = _sniff_after_id3(head[tag_len:])
            if inner is not None:
                return inner
        return Sniffed("mp3")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("png")
    if head[:3] == b"\xff\xd8\xff":
        return Sniffed("jpeg")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("gif")
    if head[:5] == b"%PDF-":
        return Sniffed("pdf")
    if magic4 in (b"PK\x03\x04", b"PK\x05\x06"):
        return Sniffed("zip")
    if head[:2] == b"\x1f\x8b":
        return Sniffed("gzip")
    mpeg = _sniff_mpeg_or_adts(head)
    if mpeg is not None:
        return mpeg
    if _looks_like_text(head):
        return Sniffed("text")
    return None


def _id3v2_length(head: bytes) -> int | None:
    """Total length of a leading ID3v2 tag (header + body + optional footer), or None."""
    if len(head) < 10 or head[:3] != b"ID3" or head[3] > 4 or any(b & 0x80 for b in head[6:10]):
        return None
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def _sniff_after_id3(data: bytes) -> Sniffed | None:
    """What follows an ID3v2 tag: MPEG audio, ADTS AAC or (ID3-prefixed) FLAC."""
    if data.startswith(b"fLaC"):
        return Sniffed("flac")
    return _sniff_mpeg_or_adts(data)


_MPEG_BITRATES: Final[dict[tuple[int, int], tuple[int, ...]]] = {
    # (mpeg1?, layer) -> kbit/s for bitrate index 1..14
    (1, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (0, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (0, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (0, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES: Final[dict[int, tuple[int, int, int]]] = {
    3: (44100, 48000, 32000),  # MPEG-1
    2: (22050, 24000, 16000),  # MPEG-2
    0: (11025, 12000, 8000),  # MPEG-2.5
}


def _mpeg_frame_length(h: bytes) -> int | None:
    """Length in bytes of the MPEG audio frame whose header starts ``h``, or None if not a valid header."""
    if len(h) < 4 or h[0] != 0xFF or (h[1] & 0xE0) != 0xE0:
        return None
    version = (h[1] >> 3) & 3
    layer = 4 - ((h[1] >> 1) & 3)  # 1, 2, 3; 4 = reserved
    bitrate_index = h[2] >> 4
    rate_index = (h[2] >> 2) & 3
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = 1 if version == 3 else 0
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _MPEG_RATES[version][rate_index]
    padding = (h[2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    if layer == 3 and not mpeg1:
        return 72 * bitrate // rate + padding
    return 144 * bitrate // rate + padding


def _adts_frame_length(h: bytes) -> int | None:
    if len(h) < 7 or h[0] != 0xFF or (h[1] & 0xF6) != 0xF0:  # sync, layer == 0
        return None
    if ((h[2] >> 2) & 0xF) > 12:  # sampling frequency index
        return None
    length = ((h[3] & 0x03) << 11) | (h[4] << 3) | (h[5] >> 5)
    return length if length >= 7 else None


def _sniff_mpeg_or_adts(data: bytes, scan: int = 4096) -> Sniffed | None:
    """Find MPEG audio (or ADTS AAC) frames within the first ``scan`` bytes.

    A header at offset ``i`` counts when the next frame header follows exactly one frame later (or the data
    ends before it could); with leading junk (offset > 0) two chained frames are required.
    """
    limit = min(len(data) - 4, scan)
    i = data.find(b"\xff", 0, max(limit, 0))
    while 0 <= i < limit:
        for fmt, frame_length in (("mp3", _mpeg_frame_length), ("aac", _adts_frame_length)):
            n = frame_length(data[i : i + 8])
            if n is None:
                continue
            nxt = i + n
            if nxt + 8 > len(data):
                if i == 0:
                    return Sniffed(fmt)
                continue
            if frame_length(data[nxt : nxt + 8]) is not None:
                return Sniffed(fmt)
        i = data.find(b"\xff", i + 1, limit)
    return None


_OGG_CODECS: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x01vorbis", "vorbis"),
    (b"OpusHead", "opus"),
    (b"\x7fFLAC", "flac"),
    (b"Speex   ", "speex"),
    (b"\x80theora", "theora"),
    (b"fishead\x00", "skeleton"),
)


def _ogg_first_codec(head: bytes) -> str | None:
    """Codec of the first packet on the first Ogg page (27-byte page header + segment table)."""
    if len(head) < 27:
        return None
    body = 27 + head[26]
    packet = head[body : body + 16]
    for magic, codec in _OGG_CODECS:
        if packet.startswith(magic):
            return codec
    return None


def _ebml_vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int] | None:
    """Read an EBML variable-length integer at ``pos``: (value, new position)."""
    if pos >= len(data) or data[pos] == 0:
        return None
    first = data[pos]
    length = 8 - first.bit_length() + 1
    if pos + length > len(data):
        return None
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for b in data[pos + 1 : pos + length]:
        value = (value << 8) | b
    return value, pos + length


def _ebml_doctype(head: bytes) -> str | None:
    """The DocType string in the EBML header (``webm``, ``matroska``), or None."""
    size = _ebml_vint(head, 4, keep_marker=False)
    if size is None:
        return None
    header_size, pos = size
    end = min(len(head), pos + header_size)
    while pos < end:
        elem = _ebml_vint(head, pos, keep_marker=True)
        if elem is None:
            return None
        elem_id, pos = elem
        elem_size = _ebml_vint(head, pos, keep_marker=False)
        if elem_size is None:
            return None
        length, pos = elem_size
        if elem_id == 0x4282:  # DocType
            return head[pos : pos + length].rstrip(b"\x00").decode("ascii", "replace")
        pos += length
    return None


def _looks_like_text(head: bytes) -> bool:
    sample = head[:4096]
    if b"\x00" in sample:
        return False
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not merely a character cut at the end of the sample
            return False
        text = sample[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\t\r\n\f" for ch in text)
    return bool(text) and printable >= 0.95 * len(text)


# --------------------------------------------------------------------------------------------------------
# Probe
# --------------------------------------------------------------------------------------------------------


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


def _too_large(size: int, limits: MediaLimits) -> Rejection:
    return Rejection("file_too_large", f"The file is {_fmt_mb(size)}; the limit is {_fmt_mb(limits.max_bytes)}.")


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


def _undecodable_open(fmt: str, exc: av.FFmpegError) -> Rejection:
    what = _DESCRIPTIONS.get(fmt, fmt)
    return Rejection(
        "undecodable",
        f"The file looks like {what} but could not be read; it is probably truncated or corrupt ({exc.strerror}).",
    )


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


# --------------------------------------------------------------------------------------------------------
# Normalize
# --------------------------------------------------------------------------------------------------------


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


def _too_long(limits: MediaLimits, duration_s: float | None) -> Rejection:
    limit = _fmt_duration(limits.max_duration_s)
    if duration_s is None:
        return Rejection("too_long", f"The recording is longer than {limit}, the limit.")
    return Rejection("too_long", f"The recording is {_fmt_duration(duration_s)} long; the limit is {limit}.")


def _too_short(limits: MediaLimits, duration_s: float) -> Rejection:
    return Rejection(
        "too_short",
        f"The recording is {_fmt_duration(duration_s)} long; the minimum is {_fmt_duration(limits.min_duration_s)}.",
    )


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


# --------------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------------


def _fmt_mb(n: int) -> str:
    if n >= GIB:
        gb = n / GIB
        return f"{int(gb)} GB" if gb == int(gb) else f"{gb:.1f} GB"
    mb = n / MIB
    if mb == int(mb):
        return f"{int(mb)} MB"
    if mb < 0.1:
        return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} bytes"
    return f"{mb:.1f} MB"


def _fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{minutes} min" + (f" {secs} s" if secs else "")
