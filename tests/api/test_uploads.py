"""speakerline.uploads: the object names the API gives uploads."""

from __future__ import annotations

import pytest

from speakerline import uploads


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("standup.mp3", "standup.mp3"),
        ("/home/me/rec/standup.mp3", "standup.mp3"),
        ("C:\\Users\\me\\standup.mp3", "standup.mp3"),
        ("a/b\\c/standup.mp3", "standup.mp3"),
        ("../../etc/passwd", "passwd"),
        ("my interview  (final).wav", "my_interview_final.wav"),
        ("café déjà vu.m4a", "cafe_deja_vu.m4a"),
        ("\uff26\uff55\uff4c\uff4c.wav", "Full.wav"),  # fullwidth letters fold to ASCII
        ("日本語 interview.ogg", "interview.ogg"),
        (".hidden.wav", "hidden.wav"),
        ("...wav", "wav"),
        ("-_-name.flac", "name.flac"),
        ("", "audio"),
        ("///", "audio"),
        ("dir/", "audio"),
        ("日本語", "audio"),
        ("...", "audio"),
        ("a;b&c|d$e`f.mp3", "a_b_c_d_e_f.mp3"),
        ("line\nbreak\x00.wav", "line_break.wav"),
    ],
)
def test_safe_file_name(name: str, safe: str) -> None:
    assert uploads.safe_file_name(name) == safe


@pytest.mark.parametrize("name", ["x" * 500 + ".wav", "ü" * 300 + ".flac", "a b " * 120 + ".webm", "y" * 201])
def test_long_names_keep_the_extension_and_stay_within_200(name: str) -> None:
    safe = uploads.safe_file_name(name)
    assert len(safe) <= 200
    assert len(safe) >= 190  # cut, not dropped
    ext = name.rpartition(".")[2] if "." in name else None
    if ext:
        assert safe.endswith("." + ext)
    assert uploads.safe_file_name(safe) == safe  # already safe: unchanged


def test_a_long_extension_is_not_kept() -> None:
    safe = uploads.safe_file_name("x" * 300 + "." + "e" * 20)
    assert len(safe) <= 200 and safe == "x" * 199


def test_results_are_always_safe() -> None:
    for name in ["a/b", "..", "ü.wav", " .x", "x" * 1000, "\\\\server\\share\\f.mp3", "%2e%2e%2f.wav"]:
        safe = uploads.safe_file_name(name)
        assert safe and len(safe) <= 200
        assert not safe.startswith(".")
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in safe), safe


def test_a_non_ascii_name_keeps_its_extension() -> None:
    assert uploads.safe_file_name("日本語.mp3").endswith(".mp3")


def test_upload_headers_cover_every_metadata_key() -> None:
    # Any client (the API, the studio, the CLI) may set any metadata key ingest reads.
    assert {f"x-goog-meta-{k}" for k in uploads.METADATA_KEYS} <= set(uploads.UPLOAD_HEADERS)
