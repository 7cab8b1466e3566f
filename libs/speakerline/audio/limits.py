"""What ingest accepts and what comes out: limits, format tables, result types, and the wording of rejections.

Shared by :mod:`.sniffing`, :mod:`.probing` and :mod:`.normalizing`; the public names are re-exported by
:mod:`speakerline.audio`, whose docstring lists the rejection codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av

from speakerline.settings import DEFAULT_MAX_UPLOAD_BYTES

MIB: Final = 1024 * 1024
GIB: Final = 1024 * MIB
TARGET_SAMPLE_RATE: Final = 16_000
TARGET_CHANNELS: Final = 1
_SAMPLE_WIDTH: Final = 2  # PCM16
_WAV_HEADER_BYTES: Final = 44  # what the stdlib ``wave`` module writes for PCM

#: Canonical format name -> FFmpeg demuxer forced when opening it. These are all the formats this package
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

    max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
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
    """Why a file was refused. ``code`` is one of the codes in the :mod:`speakerline.audio` docstring."""

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
# Rejections both probe and normalize give
# --------------------------------------------------------------------------------------------------------


def _too_large(size: int, limits: MediaLimits) -> Rejection:
    return Rejection("file_too_large", f"The file is {_fmt_mb(size)}; the limit is {_fmt_mb(limits.max_bytes)}.")


def _undecodable_open(fmt: str, exc: av.FFmpegError) -> Rejection:
    what = _DESCRIPTIONS.get(fmt, fmt)
    return Rejection(
        "undecodable",
        f"The file looks like {what} but could not be read; it is probably truncated or corrupt ({exc.strerror}).",
    )


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
