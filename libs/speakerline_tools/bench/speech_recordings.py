"""Recordings of real speech for the pipeline benchmark: conversations of the 251 LibriSpeech voices of
`../shared/data/librispeech-voices` made as `speakerline_tools.datasets.voices_set` makes its set, concatenated to a
length (seeded, deterministic, cached as FLAC)."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from speakerline_tools import repo
from speakerline_tools.datasets import voices_set

VOICES_SOURCE = repo.root().parent / "shared" / "data" / "librispeech-voices"


@functools.cache
def _voices(source: Path, cache: Path) -> dict[str, voices_set.Voice]:
    """The LibriSpeech voices, analysed by `voices_set` (which reads a `speakers.tsv` beside the FLACs: made
    under `cache` from SPEAKERS.TXT, with links to the files)."""
    import soundfile as sf

    folder = cache / "voices"
    folder.mkdir(parents=True, exist_ok=True)
    sexes = {}
    for line in (source / "SPEAKERS.TXT").read_text().splitlines():
        fields = [f.strip() for f in line.split("|")]
        if not line.startswith(";") and len(fields) >= 2:
            sexes[fields[0]] = fields[1]
    rows = ["speaker\tsex\tfile"]
    for flac in sorted(source.glob("*.flac")):
        if not voices_set.voiced_mask(sf.read(str(flac), dtype="float64")[0]).any():
            continue  # no pause anywhere (2 of the 251: noise as loud as the voice), so no voiced frame found
        link = folder / flac.name
        if not link.exists():
            link.symlink_to(flac.resolve())
        speaker = flac.name.split("-")[0]
        rows.append(f"{speaker}\t{sexes[speaker]}\t{flac.name}")
    (folder / "speakers.tsv").write_text("\n".join(rows) + "\n")
    return voices_set.load_voices(folder)


def conversations(
    seed: int, voices: Mapping[str, voices_set.Voice]
) -> Iterator[tuple[voices_set.Conversation, dict[str, voices_set.Voice]]]:
    """Endless rounds of `voices_set`'s conversation designs, each round in a seeded order, with seeds of
    their own and the voice pool rotated (so other voices are picked), as (conversation, voices) pairs."""
    ids = list(voices)
    for round_ in itertools.count():
        shift = (seed * 31 + round_ * 37) % len(ids)
        pool = {v: voices[v] for v in ids[shift:] + ids[:shift]}
        order = np.random.default_rng([seed, round_]).permutation(len(voices_set.CONVERSATIONS))
        for i in order:
            conv = voices_set.CONVERSATIONS[int(i)]
            yield dataclasses.replace(conv, seed=conv.seed * 10_000 + seed * 100 + round_), pool


def build_speech(minutes: float, seed: int, cache: Path, source: Path = VOICES_SOURCE) -> Path:
    """A FLAC of `minutes` of real-speech conversations (cached: the same minutes and seed give the same file)."""
    import soundfile as sf

    path = cache / "recordings" / f"speech-{minutes:g}min-seed{seed}.flac"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    voices = _voices(source, cache)
    target = round(minutes * 60 * voices_set.SR)
    partial = path.with_name(path.stem + ".partial.flac")
    written = 0
    with sf.SoundFile(partial, "w", voices_set.SR, 1, subtype="PCM_16", format="FLAC") as out:
        for conv, pool in conversations(seed, voices):
            audio = voices_set.render(voices_set.plan_conversation(conv, pool), pool)[: target - written]
            out.write(audio)
            written += len(audio)
            if written >= target:
                break
    partial.rename(path)
    return path
