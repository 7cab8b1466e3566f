"""Sniffing: the file type from its first bytes, never from its name or its claimed content type."""

from __future__ import annotations

from typing import Final

from speakerline.audio.limits import Sniffed

#: How many leading bytes :func:`probe` reads for sniffing.
SNIFF_BYTES: Final = 64 * 1024


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
