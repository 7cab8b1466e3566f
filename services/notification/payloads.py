"""Channel payloads for a job outcome: generic webhook, Discord and Slack.

Text shown to humans may contain attacker-influenced strings (file names, error messages from a
decoder), so every channel escapes its markup and Discord is told not to resolve any mentions:
an error message containing "@everyone" must not ping a whole server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from speakerline.events import models

__all__ = [
    "DISCORD_COLORS",
    "JobOutcome",
    "OutcomeType",
    "discord_payload",
    "format_duration",
    "slack_payload",
    "webhook_body",
]

OutcomeType = Literal["completed", "failed", "rejected"]

# Discord documented limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
_DISCORD_CONTENT = 2000
_DISCORD_TITLE = 256
_DISCORD_DESCRIPTION = 4096
_DISCORD_FIELD_NAME = 256
_DISCORD_FIELD_VALUE = 1024
_DISCORD_FIELDS = 25
_DISCORD_EMBED_TOTAL = 6000
# Slack limits (Block Kit reference): header text 150, section text 3000, 10 fields of 2000.
_SLACK_HEADER = 150
_SLACK_SECTION = 3000
_SLACK_FIELD = 2000
_SLACK_FIELDS = 10
_SLACK_TEXT = 3000  # the notification fallback; Slack allows far more but nobody reads it there

DISCORD_COLORS: Mapping[OutcomeType, int] = {
    "completed": 0x2ECC71,  # green
    "failed": 0xE74C3C,  # red
    "rejected": 0xE74C3C,  # red: the user has to act either way
}
_EMOJI: Mapping[OutcomeType, str] = {"completed": "✅", "failed": "❌", "rejected": "⛔"}
_VERB: Mapping[OutcomeType, str] = {"completed": "finished", "failed": "failed", "rejected": "was rejected"}
_BAR_WIDTH = 10
_MAX_LISTED_SPEAKERS = 10  # beyond this a chat message stops being readable; the rest is summed up


@dataclass(frozen=True)
class JobOutcome:
    outcome_type: OutcomeType
    job_id: str
    message: str  # short status line, e.g. "Diarization finished in 42 s"
    output_uri: str | None = None  # gs://.../output.json for completed jobs
    output_url: str | None = None  # signed https URL for the same object, when one was minted
    error_code: str | None = None
    error_message: str | None = None
    # the job.completed summary, as the event carries it (output.json's `summary` validates as one too)
    summary: models.Summary | None = None
    extra_fields: Sequence[tuple[str, str]] = field(default_factory=tuple)  # e.g. ("Input", "talk.mp3")


# ------------------------------------------------------------------------------------------ webhook


def webhook_body(cloudevent: Mapping[str, Any]) -> bytes:
    """The generic webhook body: the CloudEvent in structured JSON mode, as the exact signed bytes."""
    missing = [a for a in ("specversion", "id", "source", "type") if not cloudevent.get(a)]
    if missing:
        raise ValueError(f"not a CloudEvent, missing required attributes: {missing}")
    # Compact separators and UTF-8: the signature covers these bytes, so they are produced once here.
    return json.dumps(cloudevent, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ------------------------------------------------------------------------------------------ helpers


def format_duration(seconds: float) -> str:
    """Human clock format: 0:42, 12:05, 1:02:03."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _truncate(text: str, limit: int) -> str:
    """Cut to `limit` UTF-16 code units (how Discord and Slack count), marking the cut with "…"."""
    if _utf16_len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    budget = limit - 1  # room for the ellipsis
    kept: list[str] = []
    for ch in text:
        budget -= 2 if ord(ch) > 0xFFFF else 1
        if budget < 0:
            break
        kept.append(ch)
    return "".join(kept) + "…"


def _share_bar(share: float) -> str:
    filled = round(min(max(share, 0.0), 1.0) * _BAR_WIDTH)
    return "█" * filled + "░" * (_BAR_WIDTH - filled)


def _speaker_lines(summary: models.Summary, escape: Callable[[str], str]) -> list[str]:
    ranked = sorted(summary.speakers, key=lambda s: -s.share)  # `share`: of all speech, 0..1
    lines = []
    for s in ranked[:_MAX_LISTED_SPEAKERS]:
        talk = f" · {format_duration(s.talk_time_s)}"
        lines.append(f"`{_share_bar(s.share)}` {round(s.share * 100):>3d}% {escape(s.speaker)}{talk}")
    if len(ranked) > _MAX_LISTED_SPEAKERS:
        rest = sum(s.share for s in ranked[_MAX_LISTED_SPEAKERS:])
        lines.append(f"…and {len(ranked) - _MAX_LISTED_SPEAKERS} more speakers ({round(rest * 100)}%)")
    return lines


def _headline(outcome: JobOutcome, code: Callable[[str], str]) -> str:
    """One line for notifications; `code` renders the user-supplied ids in the channel's markup."""
    kind = outcome.outcome_type
    base = f"{_EMOJI[kind]} Diarization job {code(outcome.job_id)} {_VERB[kind]}"
    if kind == "completed" and outcome.summary is not None:
        s = outcome.summary
        plural = "speaker" if s.num_speakers == 1 else "speakers"
        return f"{base}: {s.num_speakers} {plural} in {format_duration(s.duration_s)} of audio"
    if outcome.error_code:
        return f"{base} ({code(outcome.error_code)})"
    return base


def _plain(text: str) -> str:
    return text


def _hint(outcome: JobOutcome) -> str | None:
    # Tell the reader what to do next, not just what happened.
    if outcome.outcome_type == "rejected":
        return "The input was refused before processing; fix it and submit a new job."
    if outcome.outcome_type == "failed":
        return "Processing stopped. If the error looks transient, resubmitting the job may help."
    return None


# ------------------------------------------------------------------------------------------ Discord


def _discord_escape(text: str) -> str:
    for ch in ("\\", "*", "_", "~", "`", "|", ">", "[", "]", "#"):
        text = text.replace(ch, "\\" + ch)
    return text


def _discord_code(text: str) -> str:
    # Inline code cannot escape a backtick; replacing it keeps the span intact.
    return "`" + text.replace("`", "'") + "`"


def discord_payload(outcome: JobOutcome) -> dict[str, Any]:
    """A Discord webhook message: a one-line ``content`` plus one colour-coded embed."""
    title = f"Job {outcome.job_id} {_VERB[outcome.outcome_type]}"
    description_parts = [_discord_escape(outcome.message)] if outcome.message else []
    if outcome.error_message:
        description_parts.append(f"**Error:** {_discord_escape(outcome.error_message)}")
    if outcome.summary is not None and outcome.summary.speakers:
        description_parts.append(
            "**Who spoke how much**\n" + "\n".join(_speaker_lines(outcome.summary, _discord_escape))
        )
    hint = _hint(outcome)
    if hint:
        description_parts.append(f"*{hint}*")
    embed: dict[str, Any] = {
        "title": _truncate(title, _DISCORD_TITLE),
        "description": _truncate("\n\n".join(description_parts), _DISCORD_DESCRIPTION),
        "color": DISCORD_COLORS[outcome.outcome_type],
        "fields": _discord_fields(outcome),
    }
    if outcome.output_url and outcome.output_url.startswith("https://"):
        embed["url"] = outcome.output_url  # Discord rejects non-http(s) embed URLs, so never the gs:// URI
    _fit_embed(embed)
    return {
        "content": _truncate(_headline(outcome, _discord_code), _DISCORD_CONTENT),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }


def _discord_fields(outcome: JobOutcome) -> list[dict[str, Any]]:
    fields: list[tuple[str, str, bool]] = [("Job ID", _discord_code(outcome.job_id), True)]
    if outcome.summary is not None:
        fields.append(("Speakers", str(outcome.summary.num_speakers), True))
        fields.append(("Audio duration", format_duration(outcome.summary.duration_s), True))
    if outcome.error_code:
        fields.append(("Error code", _discord_code(outcome.error_code), True))
    if outcome.output_uri:
        fields.append(("Result", _discord_code(outcome.output_uri), False))
    if outcome.output_url and outcome.output_url.startswith("https://"):
        fields.append(("Download", f"[output.json]({outcome.output_url})", False))
    fields.extend((name, _discord_escape(value), False) for name, value in outcome.extra_fields)
    return [
        {"name": _truncate(n, _DISCORD_FIELD_NAME), "value": _truncate(v, _DISCORD_FIELD_VALUE), "inline": i}
        for n, v, i in fields[:_DISCORD_FIELDS]
        if v
    ]


def _fit_embed(embed: dict[str, Any]) -> None:
    """Respect Discord's cap on the sum of all embed texts.

    Trailing fields (the caller's extras come last) are dropped until the title, the fields and a
    readable share of the description fit; then the description is trimmed to the remaining room.
    """
    fields: list[dict[str, Any]] = embed["fields"]
    description: str = embed["description"]

    def fixed() -> int:
        return _utf16_len(embed["title"]) + sum(_utf16_len(f["name"] + f["value"]) for f in fields)

    wanted = min(_utf16_len(description), _DISCORD_FIELD_VALUE)
    while len(fields) > 1 and fixed() + wanted > _DISCORD_EMBED_TOTAL:
        fields.pop()
    embed["description"] = _truncate(description, max(0, _DISCORD_EMBED_TOTAL - fixed()))


# -------------------------------------------------------------------------------------------- Slack


def _slack_escape(text: str) -> str:
    # The three characters Slack requires escaped in mrkdwn; everything else is literal.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(outcome: JobOutcome) -> dict[str, Any]:
    """A Slack incoming-webhook message: notification ``text`` plus Block Kit ``blocks``."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _truncate(_headline(outcome, _plain), _SLACK_HEADER)},
        },
    ]
    body = [_slack_escape(outcome.message)] if outcome.message else []
    if outcome.error_message:
        body.append(f"*Error:* {_slack_escape(outcome.error_message)}")
    if outcome.summary is not None and outcome.summary.speakers:
        body.append("*Who spoke how much*\n" + "\n".join(_speaker_lines(outcome.summary, _slack_escape)))
    hint = _hint(outcome)
    if hint:
        body.append(f"_{hint}_")
    if body:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _truncate("\n\n".join(body), _SLACK_SECTION)},
            }
        )
    fields = _slack_fields(outcome)
    if fields:
        blocks.append({"type": "section", "fields": fields})
    if outcome.output_url and outcome.output_url.startswith("https://"):
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Download output.json"},
                        "url": outcome.output_url,
                    }
                ],
            }
        )
    text = _headline(outcome, lambda value: f"`{_slack_escape(value)}`")
    return {"text": _truncate(text, _SLACK_TEXT), "blocks": blocks}


def _slack_fields(outcome: JobOutcome) -> list[dict[str, str]]:
    pairs = [("Job ID", f"`{_slack_escape(outcome.job_id)}`")]
    if outcome.summary is not None:
        pairs.append(("Speakers", str(outcome.summary.num_speakers)))
        pairs.append(("Audio duration", format_duration(outcome.summary.duration_s)))
    if outcome.error_code:
        pairs.append(("Error code", f"`{_slack_escape(outcome.error_code)}`"))
    if outcome.output_uri:
        pairs.append(("Result", f"`{_slack_escape(outcome.output_uri)}`"))
    pairs.extend((name, _slack_escape(value)) for name, value in outcome.extra_fields)
    return [
        {"type": "mrkdwn", "text": _truncate(f"*{_slack_escape(name)}*\n{value}", _SLACK_FIELD)}
        for name, value in pairs[:_SLACK_FIELDS]
    ]
