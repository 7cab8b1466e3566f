"""The inputs of an evaluation: audio files paired with their reference RTTMs, read and normalized as ingest does."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from speakerline.audio import DECODABLE_FORMATS, SNIFF_BYTES, MediaLimits, Rejection, normalize_file, sniff_format

#: Extensions that mark a file as audio even when its content is not recognised (so that a broken ``x.wav`` is
#: reported as unreadable rather than silently left out); anything else counts as audio only by its content.
AUDIO_SUFFIXES: Final = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".webm", ".mka", ".aif", ".aiff"}
)


class EvalError(Exception):
    """The directory (or a file in it) cannot be evaluated; the message is for people."""


@dataclass(frozen=True)
class EvalPair:
    """One audio file and its reference RTTM (same stem)."""

    name: str  # the common file stem
    audio: Path
    rttm: Path


@dataclass(frozen=True)
class PreparedFile:
    """A pair ready to diarize: its normalized WAV, reference and duration."""

    pair: EvalPair
    wav: Path
    duration_s: float
    reference: Any  # pyannote.core.Annotation


def _is_audio(path: Path) -> bool:
    if path.suffix.lower() in AUDIO_SUFFIXES:
        return True
    try:
        with path.open("rb") as fh:
            return sniff_format(fh.read(SNIFF_BYTES)) in DECODABLE_FORMATS
    except OSError:
        return False


def find_pairs(directory: Path) -> tuple[list[EvalPair], list[str]]:
    """Pair every ``<stem>.rttm`` in ``directory`` with the audio file of the same stem.

    Returns (pairs sorted by stem, notes on the files left without a partner). Raises :class:`EvalError` when
    ``directory`` is not a directory or a stem has several audio files.
    """
    if not directory.is_dir():
        raise EvalError(f"{directory}: no such directory")
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    rttms = {p.stem: p for p in files if p.suffix.lower() == ".rttm"}
    audio: dict[str, list[Path]] = {}
    for path in files:
        if path.suffix.lower() != ".rttm" and _is_audio(path):
            audio.setdefault(path.stem, []).append(path)
    pairs: list[EvalPair] = []
    unpaired: list[str] = []
    for stem, rttm in sorted(rttms.items()):
        candidates = audio.get(stem, [])
        if len(candidates) > 1:
            names = ", ".join(p.name for p in candidates)
            raise EvalError(f"{directory}: several audio files for {rttm.name}: {names}; keep one")
        if not candidates:
            unpaired.append(f"{rttm.name}: no audio file named {stem}.*")
            continue
        pairs.append(EvalPair(stem, candidates[0], rttm))
    unpaired += [
        f"{paths[0].name}: no reference {stem}.rttm" for stem, paths in sorted(audio.items()) if stem not in rttms
    ]
    return pairs, unpaired


def load_reference(rttm: Path, stem: str) -> Any:
    """The reference annotation in ``rttm`` (pyannote.core.Annotation): its only uri, else the one named ``stem``.

    An RTTM without SPEAKER lines is a reference without speech. Raises :class:`EvalError` when the file cannot be
    parsed or holds several uris none of which is ``stem``.
    """
    from pyannote.core import Annotation
    from pyannote.database.util import load_rttm

    try:
        text = rttm.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"{rttm}: cannot read the reference ({exc})") from exc
    if not text.strip():
        return Annotation(uri=stem)
    try:
        annotations: dict[str, Any] = load_rttm(str(rttm))  # type: ignore[no-untyped-call]
    except Exception as exc:  # pandas' parser errors are of many kinds
        raise EvalError(f"{rttm}: not a readable RTTM ({type(exc).__name__}: {exc})") from exc
    if len(annotations) == 1:
        return next(iter(annotations.values()))
    if stem in annotations:
        return annotations[stem]
    raise EvalError(f"{rttm}: holds several uris ({', '.join(sorted(annotations))}) and none is named {stem}")


def prepare(pairs: Iterable[EvalPair], workdir: Path, limits: MediaLimits | None = None) -> list[PreparedFile]:
    """Read every reference and normalize every audio file into ``workdir`` (as ingest does), failing fast.

    Raises :class:`EvalError` naming the first file that cannot be read.
    """
    prepared: list[PreparedFile] = []
    for i, pair in enumerate(pairs):
        reference = load_reference(pair.rttm, pair.name)
        wav = workdir / f"{i:04d}.wav"
        try:
            normalized = normalize_file(pair.audio, wav, limits)
        except OSError as exc:
            raise EvalError(f"{pair.audio}: cannot read ({exc})") from exc
        if isinstance(normalized, Rejection):
            raise EvalError(f"{pair.audio}: unreadable audio ({normalized.code}): {normalized.message}")
        prepared.append(PreparedFile(pair, wav, normalized.duration_s, reference))
    return prepared


def no_pairs_message(directory: Path, unpaired: Sequence[str]) -> str:
    message = f"{directory}: no audio file with a reference RTTM of the same name (<name>.rttm beside <name>.flac)"
    return message + "".join(f"\n  {note}" for note in unpaired)
