"""Speaker timelines: the `Turn` value type and its interchange formats.

Pure functions only: every service (diarization, post-processing, notification, the CLI) shares
these so that an RTTM written by one is read back identically by another.

Formats:

* RTTM (NIST Rich Transcription Time Marked), the lingua franca of diarization scoring tools
  (`dscore`, `pyannote.metrics`): ``SPEAKER <file> 1 <start> <dur> <NA> <NA> <spk> <NA> <NA>``.
* WebVTT, so that a browser ``<track>`` or any video player shows who is speaking.
* The lineage JSON format, ``{"speaker", "start", "end", "duration"}`` with seconds rounded to
  milliseconds; it is the ``segments`` list of ``output.json`` and must not change shape.

`exclusive_timeline` derives the one-speaker-at-a-time timeline (what transcript alignment needs)
from an overlap-aware one, for engines and older messages that do not provide it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Turn",
    "exclusive_timeline",
    "merge_turns",
    "parse_rttm",
    "speaker_label",
    "to_rttm",
    "to_webvtt",
    "turns_from_json",
    "turns_to_json",
]

# Millisecond precision everywhere: diarization frames are ~10-20 ms, so more digits are noise, and a
# fixed precision makes outputs byte-stable across runs and platforms.
_DECIMALS = 3
# Two stretch lengths closer than this are a tie (they come from differences of rounded timestamps).
_LENGTH_TIE_S = 1e-9
# Tolerance when checking a stored "duration" against end - start: both were rounded to 3 decimals
# independently, so they may disagree by up to one unit in the last place (plus float noise).
_DURATION_TOLERANCE_S = 0.0015
_RTTM_NA = "<NA>"
_RTTM_COMMENT_PREFIXES = ("#", ";;")


@dataclass(frozen=True, order=True)
class Turn:
    """One stretch of speech by one speaker, in seconds from the start of the audio.

    Field order matters: ``order=True`` compares (start, end, speaker), which is exactly the
    chronological order every format wants, with the speaker label as a deterministic tie-break.
    """

    start: float
    end: float
    speaker: str

    def __post_init__(self) -> None:
        # Validate at construction so no format writer ever has to cope with NaN or reversed turns.
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError(f"turn times must be finite, got start={self.start!r} end={self.end!r}")
        if self.start < 0:
            raise ValueError(f"turn start must be >= 0, got {self.start!r}")
        if self.end < self.start:
            raise ValueError(f"turn end ({self.end!r}) is before its start ({self.start!r})")
        if not isinstance(self.speaker, str) or not self.speaker:
            raise ValueError(f"speaker label must be a non-empty string, got {self.speaker!r}")

    @property
    def duration(self) -> float:
        return self.end - self.start


def speaker_label(index: int, width: int = 2) -> str:
    """The label of the speaker numbered `index`: ``SPEAKER_00``, ``SPEAKER_01``... (pyannote's convention),
    zero-padded to `width` digits."""
    return f"SPEAKER_{index:0{width}d}"


def merge_turns(turns: Iterable[Turn]) -> list[Turn]:
    """Each speaker's turns joined where they touch or overlap (a turn cut in two becomes one again), sorted."""
    merged: dict[str, list[Turn]] = {}
    for turn in sorted(turns):
        own = merged.setdefault(turn.speaker, [])
        if own and turn.start <= own[-1].end:
            own[-1] = Turn(own[-1].start, max(own[-1].end, turn.end), turn.speaker)
        else:
            own.append(turn)
    return sorted(turn for own in merged.values() for turn in own)


# -------------------------------------------------------------------------------------- exclusive


def exclusive_timeline(turns: Iterable[Turn]) -> list[Turn]:
    """The one-speaker-at-a-time version of an overlap-aware timeline (sorted, non-overlapping).

    Each speaker's turns are first joined into *stretches* (the union of that speaker's turns,
    touching turns joined): a stretch is the "enclosing turn" of every instant it covers. Then at
    every instant where anyone speaks, the instant goes to the active speaker whose stretch is
    the **longest** (ties: the stretch that started earlier, then the smaller label).

    Why the longest enclosing stretch: it is the speaker holding the floor. A backchannel ("mm-hm")
    inside a long turn is shorter than that turn, so the long turn keeps the instant and stays in
    one piece. More generally the rule never fragments a turn: a stretch loses only where a longer
    (or tied, earlier) stretch overlaps it, and such a stretch cannot lie strictly inside it, so it
    covers its start or its end; what is left of every stretch is one contiguous piece (or
    nothing). "Whoever started first" is also non-fragmenting but hands a long turn's opening words
    to an interjection that began a moment earlier; scores would be better (pyannote's exclusive
    output uses them), but an overlap-aware timeline does not carry any.

    Guarantees: the output never overlaps; it covers exactly the union of the input's speech
    (zero-length turns cover nothing); every output instant's speaker was active at that instant
    in the input; each speaker has at most as many output turns as input stretches; an input that
    already is exclusive comes back unchanged except that touching same-speaker turns are joined.
    """
    stretches = _speaker_stretches(turns)
    boundaries = sorted({t for stretch in stretches for t in (stretch.start, stretch.end)})
    starting: dict[float, list[Turn]] = {}
    for stretch in stretches:
        starting.setdefault(stretch.start, []).append(stretch)
    active: list[Turn] = []  # at most one stretch per speaker: a speaker's stretches are disjoint
    result: list[Turn] = []
    for lo, hi in itertools.pairwise(boundaries):
        active = [s for s in active if s.end > lo] + starting.get(lo, [])
        if not active:
            continue
        speaker = _main_speaker(active)
        if result and result[-1].speaker == speaker and result[-1].end == lo:
            result[-1] = Turn(result[-1].start, hi, speaker)
        else:
            result.append(Turn(lo, hi, speaker))
    return result


def _speaker_stretches(turns: Iterable[Turn]) -> list[Turn]:
    """Per speaker, the disjoint union of their positive-length turns (touching turns joined)."""
    return merge_turns(t for t in turns if t.end > t.start)


def _main_speaker(active: Sequence[Turn]) -> str:
    longest = max(s.duration for s in active)
    candidates = [s for s in active if s.duration >= longest - _LENGTH_TIE_S]
    return min(candidates, key=lambda s: (s.start, s.speaker)).speaker


# --------------------------------------------------------------------------------------------- RTTM


def to_rttm(turns: Iterable[Turn], file_id: str) -> str:
    """Render turns as RTTM lines (chronological, newline-terminated; empty string for no turns)."""
    if not file_id or any(ch.isspace() for ch in file_id):
        raise ValueError(f"RTTM file id must be non-empty without whitespace, got {file_id!r}")
    return "".join(_rttm_line(turn, file_id) for turn in sorted(turns))


def _rttm_line(turn: Turn, file_id: str) -> str:
    if any(ch.isspace() for ch in turn.speaker):
        # RTTM is whitespace-separated: a space in a label would shift every later column.
        raise ValueError(f"speaker label {turn.speaker!r} contains whitespace; RTTM cannot encode it")
    na = _RTTM_NA
    return (
        f"SPEAKER {file_id} 1 {turn.start:.{_DECIMALS}f} {turn.duration:.{_DECIMALS}f} "
        f"{na} {na} {turn.speaker} {na} {na}\n"
    )


def parse_rttm(text: str) -> dict[str, list[Turn]]:
    """Parse RTTM text into turns per file id, each list sorted chronologically.

    Blank lines and comments (``#`` or NIST's ``;;``) are skipped, as are records of other RTTM
    types (``SPKR-INFO``, ``LEXEME``...), which carry no speaker turns. A malformed ``SPEAKER``
    line raises ``ValueError`` naming its 1-based line number, because silently skipping it would
    drop speech from the result.
    """
    result: dict[str, list[Turn]] = {}
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(_RTTM_COMMENT_PREFIXES):
            continue
        fields = line.split()
        if fields[0] != "SPEAKER":
            continue
        file_id, turn = _parse_speaker_fields(fields, line_no)
        result.setdefault(file_id, []).append(turn)
    return {file_id: sorted(turns) for file_id, turns in result.items()}


def _parse_speaker_fields(fields: list[str], line_no: int) -> tuple[str, Turn]:
    # Fields 9 and 10 (confidence, lookahead) are optional in practice: some tools omit them.
    if len(fields) < 8:
        raise ValueError(f"RTTM line {line_no}: expected at least 8 fields, got {len(fields)}")
    try:
        start = float(fields[3])
        duration = float(fields[4])
    except ValueError:
        raise ValueError(
            f"RTTM line {line_no}: start/duration must be numbers, got {fields[3]!r} {fields[4]!r}"
        ) from None
    if not (math.isfinite(start) and math.isfinite(duration)) or duration < 0:
        raise ValueError(f"RTTM line {line_no}: invalid start/duration {fields[3]!r} {fields[4]!r}")
    try:
        turn = Turn(start=start, end=start + duration, speaker=fields[7])
    except ValueError as exc:
        raise ValueError(f"RTTM line {line_no}: {exc}") from None
    return fields[1], turn


# ------------------------------------------------------------------------------------------- WebVTT


def to_webvtt(turns: Iterable[Turn]) -> str:
    """Render turns as a WebVTT document, one cue per turn with a ``<v speaker>`` voice span.

    The voice span lets players style or announce the speaker; the label is repeated as cue text
    so that players which ignore voice spans still show who is talking. Turns that round to zero
    milliseconds are skipped: WebVTT validators reject cues whose end is not after their start.
    """
    cues = [_webvtt_cue(turn) for turn in sorted(turns) if _ms(turn.end) > _ms(turn.start)]
    return "WEBVTT\n\n" + "\n".join(cues)


def _webvtt_cue(turn: Turn) -> str:
    label = _webvtt_escape(turn.speaker)
    return f"{_vtt_timestamp(turn.start)} --> {_vtt_timestamp(turn.end)}\n<v {label}>{label}\n"


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _vtt_timestamp(seconds: float) -> str:
    hours, rest = divmod(_ms(seconds), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _webvtt_escape(text: str) -> str:
    # Cue text is HTML-like: a literal '<' or '&' in a label would open a tag or entity.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --------------------------------------------------------------------------------------------- JSON


def turns_to_json(turns: Iterable[Turn]) -> list[dict[str, Any]]:
    """Turns in the lineage format, chronological, seconds rounded to milliseconds.

    ``duration`` is computed from the *rounded* start and end so that a reader checking
    ``end - start == duration`` sees consistent numbers.
    """
    return [_turn_to_json(turn) for turn in sorted(turns)]


def _turn_to_json(turn: Turn) -> dict[str, Any]:
    start = round(turn.start, _DECIMALS)
    end = round(turn.end, _DECIMALS)
    return {"speaker": turn.speaker, "start": start, "end": end, "duration": round(end - start, _DECIMALS)}


def turns_from_json(items: Iterable[Mapping[str, Any]]) -> list[Turn]:
    """Read lineage-format segments back into turns (sorted); raises ValueError naming the index.

    ``duration`` is optional, but when present it must agree with ``end - start``: a mismatch
    means the document was edited inconsistently and we refuse to guess which value is right.
    """
    return sorted(_turn_from_json(index, item) for index, item in enumerate(items))


def _turn_from_json(index: int, item: Mapping[str, Any]) -> Turn:
    if not isinstance(item, Mapping):
        raise ValueError(f"segment {index}: expected an object, got {type(item).__name__}")
    speaker = item.get("speaker")
    if not isinstance(speaker, str):
        raise ValueError(f"segment {index}: 'speaker' must be a string")
    start = _json_number(item, "start", index)
    end = _json_number(item, "end", index)
    try:
        turn = Turn(start=start, end=end, speaker=speaker)
    except ValueError as exc:
        raise ValueError(f"segment {index}: {exc}") from None
    if "duration" in item:
        duration = _json_number(item, "duration", index)
        if abs(duration - turn.duration) > _DURATION_TOLERANCE_S:
            raise ValueError(f"segment {index}: duration {duration} disagrees with end - start")
    return turn


def _json_number(item: Mapping[str, Any], key: str, index: int) -> float:
    value = item.get(key)
    # bool is an int subclass; `true` as a timestamp is a producer bug, not 1.0 seconds.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"segment {index}: {key!r} must be a number, got {value!r}")
    return float(value)
