"""The ingest service's media API: validation and normalization to 16 kHz mono PCM16 WAV.

The implementation lives in :mod:`speakerline.audio`, shared with the diarization service's evaluation
(``speakerline eval``) so that everything that feeds an engine decodes the same way; this module re-exports it
under its historical name.
"""

from __future__ import annotations

from speakerline.audio import (
    DECODABLE_FORMATS,
    DEFAULT_ALLOWED_CODECS,
    DEFAULT_ALLOWED_FORMATS,
    SNIFF_BYTES,
    TARGET_CHANNELS,
    TARGET_SAMPLE_RATE,
    MediaInfo,
    MediaLimits,
    NormalizedAudio,
    Rejection,
    Sniffed,
    ingest_file,
    normalize,
    normalize_file,
    probe,
    sniff,
    sniff_format,
)

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
