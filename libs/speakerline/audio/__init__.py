"""Audio validation and normalization: any accepted upload to the 16 kHz mono PCM16 WAV the engines read.

Pure media logic: no GCS, no Pub/Sub. Shared so that everything that feeds an engine decodes the same way: the
ingest service and the diarization service's evaluation (``speakerline eval``). The caller hands in a readable,
seekable ``BinaryIO`` (for example ``blob.open("rb")``) plus the object's size, and gets back either a
:class:`NormalizedAudio` (a 16 kHz mono PCM16 WAV on local disk, ready to upload) or a :class:`Rejection` that
can be shown to the uploader. :func:`normalize_file` does the same for a local file.

Import from this package (``from speakerline.audio import MediaLimits, ingest_file``); its modules are
:mod:`.sniffing` (the format from the first bytes), :mod:`.probing` (:func:`probe`), :mod:`.normalizing`
(:func:`normalize`, :func:`ingest_file`, :func:`normalize_file`) and :mod:`.limits` (:class:`MediaLimits`, the
result types, the format tables and the wording of rejections).

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

from speakerline.audio.limits import (
    DECODABLE_FORMATS,
    DEFAULT_ALLOWED_CODECS,
    DEFAULT_ALLOWED_FORMATS,
    TARGET_CHANNELS,
    TARGET_SAMPLE_RATE,
    MediaInfo,
    MediaLimits,
    NormalizedAudio,
    Rejection,
    Sniffed,
)
from speakerline.audio.normalizing import ingest_file, normalize, normalize_file
from speakerline.audio.probing import probe
from speakerline.audio.sniffing import SNIFF_BYTES, sniff, sniff_format

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
