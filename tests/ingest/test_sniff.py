"""Content sniffing: real headers written by FFmpeg's muxers, plus hand-made ones for non-audio files."""

from __future__ import annotations

import random
import struct

import pytest

from speakerline.audio import SNIFF_BYTES, Sniffed, sniff, sniff_format


def _id3_tag(body_size: int, *, footer: bool = False) -> bytes:
    """An ID3v2.4 header announcing ``body_size`` bytes (syncsafe), followed by zero padding."""
    size = bytes((body_size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    flags = 0x10 if footer else 0
    tag = b"ID3\x04\x00" + bytes([flags]) + size + b"\x00" * body_size
    return tag + (b"3DI\x04\x00" + bytes([flags]) + size if footer else b"")


def test_real_headers_of_every_supported_kind(kit, kind_id):
    kind = kit.KIND_BY_ID[kind_id]
    head = kit.encode(kind, 1.0)[:SNIFF_BYTES]
    assert sniff_format(head) == kind.expected_format


@pytest.mark.parametrize(("kind_id_", "codec"), [("ogg_vorbis", "vorbis"), ("ogg_opus", "opus")])
def test_ogg_codec_is_read_from_the_first_page(kit, kind_id_, codec):
    head = kit.encode(kit.KIND_BY_ID[kind_id_], 1.0)[:4096]
    assert sniff(head) == Sniffed("ogg", codec)


def test_ogg_flac_codec(kit):
    kind = kit.KIND_BY_ID["flac"]
    data = kit.encode(type(kind)("oggflac", "ogg", "flac", 48000, 1, "ogg", "flac"), 0.5)
    assert sniff(data) == Sniffed("ogg", "flac")


def test_mp3_without_id3_is_found_by_frame_sync(kit):
    data = kit.encode(kit.KIND_BY_ID["mp3"], 1.0, muxer_options={"id3v2_version": "0"})
    assert data[0] == 0xFF
    assert sniff_format(data) == "mp3"
    # leading junk before the first frame is tolerated when two frames chain
    assert sniff_format(b"\x00" * 100 + data) == "mp3"


def test_mp3_header_only_fits_once():
    # A lone MPEG-1 layer III header at offset 0 with nothing after it: accepted (short file).
    assert sniff_format(b"\xff\xfb\x90\x00" + b"\x00" * 10) == "mp3"


def test_adts_aac_matroska_aiff_are_recognised(kit):
    kind = kit.KIND_BY_ID["m4a_aac"]
    adts = kit.encode(type(kind)("adts", "adts", "aac", 44100, 1, "aac", "aac"), 1.0)
    assert sniff_format(adts) == "aac"
    mka = kit.encode(type(kind)("mka", "matroska", "flac", 44100, 1, "matroska", "flac"), 0.5)
    assert sniff_format(mka) == "matroska"
    aiff = kit.encode(type(kind)("aiff", "aiff", "pcm_s16be", 16000, 1, "aiff", "pcm_s16be"), 0.5)
    assert sniff_format(aiff) == "aiff"


def test_id3_prefixed_flac_and_aac(kit):
    flac = kit.encode(kit.KIND_BY_ID["flac"], 0.5)
    assert sniff_format(_id3_tag(64) + flac) == "flac"
    assert sniff_format(_id3_tag(64, footer=True) + flac) == "flac"
    # a tag bigger than the head: sniff can only say "probably MP3"
    assert sniff_format(_id3_tag(SNIFF_BYTES)[:SNIFF_BYTES]) == "mp3"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
        (b"RF64\xff\xff\xff\xffWAVEds64", "wav"),
        (b"BW64\xff\xff\xff\xffWAVEds64", "wav"),
        (b"RIFF\x24\x00\x00\x00AVI LIST", "avi"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "webp"),
        (b"RIFF\x24\x00\x00\x00XXXXfmt ", None),
        (b"FORM\x00\x00\x00\x00AIFCFVER", "aiff"),
        (b"caff\x00\x01\x00\x00desc", "caf"),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00", "mp4"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "mp4"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "heif"),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "matroska"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"GIF89a\x01\x00\x01\x00", "gif"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "pdf"),
        (b"PK\x03\x04\x14\x00\x06\x00", "zip"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "gzip"),
        (b"MThd\x00\x00\x00\x06", "midi"),
        ("Speaker 1: hello, this is not audio — ünïcødé\n".encode() * 10, "text"),
        (b"", None),
        (b"RIF", None),
        (b"\x00\x01\x02\x03\x04\x05\x06\x07", None),
    ],
)
def test_handmade_headers(head, expected):
    assert sniff_format(head) == expected


def test_real_png(kit):
    assert sniff_format(kit.png_bytes()) == "png"


def test_text_cut_inside_a_multibyte_character_is_still_text():
    text = ("é" * 3000).encode()  # 6000 bytes; the 4096-byte sample ends mid-character... or not
    assert sniff_format(text[:4095]) == "text"


def test_random_bytes_are_not_mistaken_for_audio():
    rng = random.Random(1234)
    hits = [sniff_format(bytes(rng.randrange(256) for _ in range(8192))) for _ in range(30)]
    assert hits.count(None) == len(hits), hits


def test_mpeg_sync_needs_a_second_frame_after_junk():
    # One valid-looking MPEG header after junk, with garbage where the next frame should be.
    head = b"\x00" * 10 + b"\xff\xfb\x90\x00" + b"\x00" * 600
    assert sniff_format(head) is None
    # ...and a reserved sample-rate index is no frame at all
    assert sniff_format(b"\xff\xfb\x9c\x00" + struct.pack("<I", 0) * 4) is None
