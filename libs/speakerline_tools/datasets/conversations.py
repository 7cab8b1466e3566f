"""The conversations of the real-voices set: their seeded designs (`CONVERSATIONS`) and the plan of each, which
voice says which pieces when (`plan_conversation`). See `speakerline_tools.datasets.voices_set`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from speakerline_tools.datasets.voice_analysis import BRIDGE_S, FRAME_S, HOP, SR, Voice, regions

BACKCHANNEL_S = (0.2, 1.0)  # voiced extent of a piece usable as a backchannel
MIN_SPEAKER_S = 3.0  # every speaker has at least this much reference speech
LABELS = "ABCDEFGH"


@dataclass(frozen=True)
class Conversation:
    uri: str
    seed: int
    n_speakers: int
    sexes: str = "mixed"  # "mixed", "F" or "M"
    balance: str = "balanced"  # "balanced", "dominant", "minor" (one speaker with ~3-4.5 s), "dominant+minor"
    use: float = 1.0  # fraction of each (non-minor, non-dominated) voice's speech to use
    overlap_prob: float = 0.25  # a turn change is an interruption (0.2-1 s overlap)
    backchannel_prob: float = 0.4  # a turn of >= 2.5 s carries another speaker's short piece
    long_gap_prob: float = 0.06  # a gap is a silence of 2-6 s instead of 0.1-1 s
    level_spread_db: float = 6.0  # loudest minus quietest speaker
    rms_dbfs: float = -26.0  # overall file level (lower if the peak would go above -0.2 dBFS)
    noise: str | None = None  # "pink", "brown" or "babble"
    snr_db: float | None = None
    telephone: str | None = None  # "band" (300-3400 Hz) or "8k" (band + 8 kHz + mu-law)
    reverb_rt60_s: float | None = None
    notes: str = ""


@dataclass(frozen=True)
class Placement:
    """One slice of a voice's utterance placed in the mix."""

    speaker: str  # label in the conversation (A, B, ...)
    voice: str  # LibriSpeech reader id
    pieces: tuple[int, ...]  # consecutive piece indices of that voice
    offset: int  # sample of the mix where the slice starts
    start_frame: int  # slice of the utterance, in frames
    end_frame: int
    kind: str  # "turn" or "backchannel"


@dataclass(frozen=True)
class Plan:
    conversation: Conversation
    speakers: dict[str, str]  # label -> reader id
    gains_db: dict[str, float]
    placements: tuple[Placement, ...]
    n_samples: int


# fmt: off
CONVERSATIONS: tuple[Conversation, ...] = (
    # 2 speakers
    Conversation("lv2_a", 201, 2, level_spread_db=4, notes="calm dialogue"),
    Conversation("lv2_minor", 202, 2, balance="minor", level_spread_db=8, noise="pink", snr_db=20,
                 notes="one speaker does nearly all the talking"),
    Conversation("lv2_ff", 203, 2, sexes="F", level_spread_db=5, noise="pink", snr_db=25, reverb_rt60_s=0.4,
                 notes="two women, small room"),
    Conversation("lv2_quiet", 204, 2, sexes="M", rms_dbfs=-42, noise="brown", snr_db=18,
                 notes="two men, far-field level"),
    Conversation("lv2_tel", 205, 2, level_spread_db=3, noise="pink", snr_db=22, telephone="8k",
                 notes="phone call"),
    # 3 speakers
    Conversation("lv3_a", 301, 3, level_spread_db=6, notes="clean three-way talk"),
    Conversation("lv3_quiet", 302, 3, rms_dbfs=-40, noise="pink", snr_db=20, reverb_rt60_s=0.3,
                 notes="meeting room, distant microphone"),
    Conversation("lv3_mmm", 303, 3, sexes="M", level_spread_db=5, noise="babble", snr_db=18,
                 notes="three men, background chatter"),
    Conversation("lv3_minor", 304, 3, balance="minor", noise="pink", snr_db=25, reverb_rt60_s=0.5,
                 notes="one speaker says only a few seconds"),
    Conversation("lv3_tel", 305, 3, sexes="F", level_spread_db=6, noise="brown", snr_db=20, telephone="band",
                 notes="three women on a conference line"),
    # 4 speakers
    Conversation("lv4_a", 401, 4, level_spread_db=8, notes="clean meeting, uneven levels"),
    Conversation("lv4_ffff", 402, 4, sexes="F", level_spread_db=4, noise="pink", snr_db=22,
                 notes="four women"),
    Conversation("lv4_quiet", 403, 4, rms_dbfs=-38, noise="brown", snr_db=15, reverb_rt60_s=0.5,
                 notes="far-field meeting room"),
    Conversation("lv4_overlap", 404, 4, overlap_prob=0.5, backchannel_prob=0.8, noise="babble", snr_db=20,
                 notes="lively discussion: many interruptions and backchannels"),
    Conversation("lv4_tel", 405, 4, balance="dominant+minor", noise="pink", snr_db=20, telephone="8k",
                 notes="conference call led by one speaker"),
    # 5 speakers
    Conversation("lv5_a", 501, 5, level_spread_db=6, noise="pink", snr_db=25, use=0.9, notes="team meeting"),
    Conversation("lv5_quiet", 502, 5, rms_dbfs=-44, noise="pink", snr_db=25, reverb_rt60_s=0.4, use=0.9,
                 notes="very quiet far-field recording"),
    Conversation("lv5_mmmmm", 503, 5, sexes="M", balance="dominant", noise="babble", snr_db=20,
                 notes="five men, one chairing"),
    # 6 speakers
    Conversation("lv6_a", 601, 6, level_spread_db=10, use=0.8, notes="clean, 10 dB level spread"),
    Conversation("lv6_noisy", 602, 6, noise="pink", snr_db=12, use=0.8, notes="noisy room"),
    Conversation("lv6_tel", 603, 6, balance="minor", rms_dbfs=-36, telephone="band", noise="pink", snr_db=25,
                 use=0.8, notes="quiet conference line"),
    # 8 speakers
    Conversation("lv8_a", 801, 8, noise="pink", snr_db=25, use=0.7, notes="large meeting"),
    Conversation("lv8_quiet", 802, 8, rms_dbfs=-40, noise="brown", snr_db=20, reverb_rt60_s=0.35, use=0.7,
                 notes="large far-field meeting"),
    Conversation("lv8_tel", 803, 8, balance="dominant+minor", noise="pink", snr_db=20, telephone="8k", use=0.7,
                 notes="large conference call led by one speaker"),
)
# fmt: on


def assign_voices(voices: dict[str, Voice]) -> dict[str, list[str]]:
    """Reader ids of every conversation, spread evenly over the voices (least used first, seeded ties).

    Computed over the whole list every time, so ``--only`` gives the same files as a full run.
    """
    rng = np.random.default_rng(20_240_601)
    uses = dict.fromkeys(voices, 0)
    out: dict[str, list[str]] = {}
    for conv in CONVERSATIONS:
        if conv.sexes in ("F", "M"):
            counts = {conv.sexes: conv.n_speakers}
        else:
            half = conv.n_speakers / 2
            n_female = min(conv.n_speakers - 1, max(1, round(half + rng.uniform(-half / 2, half / 2))))
            counts = {"F": n_female, "M": conv.n_speakers - n_female}
        chosen: list[str] = []
        for sex, count in counts.items():
            pool = [v for v in voices if voices[v].sex == sex]
            tiebreak = rng.permutation(len(pool))
            ranked = sorted(range(len(pool)), key=lambda i: (uses[pool[i]], tiebreak[i]))
            chosen += [pool[i] for i in ranked[:count]]
        for v in chosen:
            uses[v] += 1
        out[conv.uri] = [chosen[i] for i in rng.permutation(len(chosen))]
    return out


def _budgets(
    conv: Conversation, labels: list[str], speech: dict[str, float], rng: np.random.Generator
) -> dict[str, Any]:
    budget = {s: speech[s] * conv.use * float(rng.uniform(0.9, 1.0)) for s in labels}
    dominant = minor = None
    if "dominant" in conv.balance:
        dominant = labels[0]
        budget[dominant] = speech[dominant]
        for s in labels[1:]:
            budget[s] = speech[s] * float(rng.uniform(0.45, 0.65))
    if "minor" in conv.balance:
        minor = labels[-1]
        budget[minor] = float(rng.uniform(3.2, 4.5))
    return {"budget": budget, "dominant": dominant, "minor": minor}


def plan_conversation(conv: Conversation, voices: dict[str, Voice]) -> Plan:
    """Where every piece goes: the whole timeline of a conversation, before any audio is made."""
    rng = np.random.default_rng(conv.seed)
    chosen = assign_voices(voices)[conv.uri]
    labels = list(LABELS[: conv.n_speakers])
    who = dict(zip(labels, chosen, strict=True))
    spread = rng.uniform(-1, 1, size=len(labels))
    spread = (spread - spread.min()) / max(1e-9, np.ptp(spread)) * conv.level_spread_db
    gains = {s: round(float(g - spread.mean()), 2) for s, g in zip(labels, spread, strict=True)}
    roles = _budgets(conv, labels, {s: voices[who[s]].speech_s for s in labels}, rng)
    budget: dict[str, float] = roles["budget"]
    dominant = roles["dominant"]

    used: dict[str, set[int]] = {s: set() for s in labels}
    spent = dict.fromkeys(labels, 0.0)
    last_end = dict.fromkeys(labels, -1.0)  # end of each speaker's latest speech (seconds)
    placements: list[Placement] = []

    def next_free(s: str) -> int | None:
        return next((p.index for p in voices[who[s]].pieces if p.index not in used[s]), None)

    def place(s: str, take: list[int], speech_start: float, kind: str) -> tuple[float, float]:
        v = voices[who[s]]
        start_f, end_f = v.pieces[take[0]].start, v.pieces[take[-1]].end
        regs = regions(v.voiced[start_f:end_f])
        offset = max(0, round((speech_start - regs[0][0] * FRAME_S) * SR))
        placements.append(Placement(s, who[s], tuple(take), offset, start_f, end_f, kind))
        used[s].update(take)
        spent[s] += sum(v.pieces[i].speech_s for i in take)
        t0, t1 = offset / SR + regs[0][0] * FRAME_S, offset / SR + regs[-1][1] * FRAME_S
        last_end[s] = max(last_end[s], t1)
        return t0, t1

    t_end = float(rng.uniform(0.3, 1.2))  # leading silence, then: end of all speech so far
    prev: str | None = None
    prev_turn = (0.0, 0.0)
    spoken: set[str] = set()
    while True:
        active = [s for s in labels if spent[s] < budget[s] - 0.05 and next_free(s) is not None]
        if not active:
            break
        candidates = [s for s in active if s != prev] or active
        newcomers = [s for s in candidates if s not in spoken]
        if newcomers and len(spoken) < len(labels):
            candidates = newcomers
        weights = np.array([budget[s] - spent[s] for s in candidates])
        spk = candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]
        spoken.add(spk)
        target = float(rng.uniform(3.0, 8.0) if spk == dominant else rng.uniform(0.8, 4.5))
        pieces = voices[who[spk]].pieces
        first = next_free(spk)
        assert first is not None
        if spk == roles["minor"]:  # the piece that best fills what is left of a minor speaker's few seconds
            need = budget[spk] - spent[spk]
            free = [p for p in pieces if p.index not in used[spk] and p.speech_s >= 0.3]
            first = min(free, key=lambda p: (abs(p.speech_s - need), p.index)).index if free else first
        take = [first]
        got = pieces[first].speech_s
        while (
            got < target
            and take[-1] + 1 < len(pieces)
            and take[-1] + 1 not in used[spk]
            and spent[spk] + got + pieces[take[-1] + 1].speech_s <= budget[spk] + 0.3
        ):
            take.append(take[-1] + 1)
            got += pieces[take[-1]].speech_s

        if prev is not None and spk != prev and rng.random() < conv.overlap_prob:
            overlap = min(float(rng.uniform(0.2, 1.0)), 0.5 * (prev_turn[1] - prev_turn[0]))
            start = t_end - overlap
        elif prev is not None and rng.random() < conv.long_gap_prob:
            start = t_end + float(rng.uniform(2.0, 6.0))
        else:
            start = t_end + float(rng.uniform(0.1, 1.0))
        start = max(start, last_end[spk] + BRIDGE_S)
        turn = place(spk, take, start, "turn")
        t_end = max(t_end, turn[1])

        if turn[1] - turn[0] >= 2.5 and rng.random() < conv.backchannel_prob:
            options = [
                (s, p.index)
                for s in labels
                if s != spk and last_end[s] + BRIDGE_S < turn[1] - 1.0
                for p in voices[who[s]].pieces
                if p.index not in used[s]
                and BACKCHANNEL_S[0] <= p.extent_s <= BACKCHANNEL_S[1]
                and spent[s] + p.speech_s <= budget[s] + 0.3
            ]
            if options:
                s, index = options[int(rng.integers(len(options)))]
                extent = voices[who[s]].pieces[index].extent_s
                lo = max(turn[0] + 0.25 * (turn[1] - turn[0]), last_end[s] + BRIDGE_S)
                hi = turn[1] - extent - 0.2
                if hi > lo:
                    back = place(s, [index], float(rng.uniform(lo, hi)), "backchannel")
                    t_end = max(t_end, back[1])
        prev, prev_turn = spk, turn

    tail = round((t_end + float(rng.uniform(0.5, 1.5))) * SR)
    n_samples = max(tail, *(p.offset + (p.end_frame - p.start_frame) * HOP for p in placements))
    return Plan(conv, who, gains, tuple(placements), n_samples)
