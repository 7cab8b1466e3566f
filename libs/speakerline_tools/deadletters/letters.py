"""What a dead letter is (why it is there, which job, its data shown safely) and which ones an operation picks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from speakerline.runtime import DEAD_LETTER_ATTR

PUBSUB_DEAD_LETTER_PREFIX = "CloudPubSubDeadLetterSource"
REPLAY_ATTR = "speakerline-replay-"
RETRIES_EXHAUSTED = "retries_exhausted"
# Neither mark: published to a dead-letter topic by hand or by something that is not speakerline's runtime.
UNKNOWN_REASON = "unknown"
# Bytes of a non-JSON payload `show` prints.
EXCERPT_BYTES: Final = 512


@dataclass(frozen=True)
class DeadLetter:
    subscription: str  # the service subscription that gave up on it
    message_id: str
    ack_id: str
    data: bytes
    attributes: Mapping[str, str]
    publish_time: str  # ISO 8601: when it was published to the dead-letter topic

    @property
    def reason(self) -> str:
        """Why it is here: the runtime's reason code, retries_exhausted when Pub/Sub moved it, else unknown."""
        runtime_reason = self.attributes.get(DEAD_LETTER_ATTR + "reason")
        if runtime_reason:
            return runtime_reason
        if any(k.startswith(PUBSUB_DEAD_LETTER_PREFIX) for k in self.attributes):
            return RETRIES_EXHAUSTED
        return UNKNOWN_REASON

    @property
    def published_at(self) -> datetime:
        at = datetime.fromisoformat(self.publish_time)
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)

    @property
    def job_id(self) -> str | None:
        return self.attributes.get("ce-jobid")

    @property
    def event_type(self) -> str | None:
        return self.attributes.get("ce-type")

    @property
    def delivery_attempts(self) -> int | None:
        """Deliveries before Pub/Sub gave up; None for a message the runtime refused (it is never retried)."""
        count = self.attributes.get(PUBSUB_DEAD_LETTER_PREFIX + "DeliveryCount")
        return int(count) if count and count.isdigit() else None

    @property
    def replayable(self) -> bool:
        """Only messages that were valid events when they failed are worth re-delivering."""
        return self.reason == RETRIES_EXHAUSTED

    def summary(self) -> dict[str, Any]:
        return {
            "subscription": self.subscription,
            "message_id": self.message_id,
            "reason": self.reason,
            "detail": self.attributes.get(DEAD_LETTER_ATTR + "message"),
            "job_id": self.job_id,
            "event_type": self.event_type,
            "event_id": self.attributes.get("ce-id"),
            "deliveries": self.attributes.get(PUBSUB_DEAD_LETTER_PREFIX + "DeliveryCount"),
            "dead_lettered_at": self.publish_time,
        }

    def detail(self) -> dict[str, Any]:
        """Everything about it, for `dlq show`: the summary, every attribute, and the data (see `render_data`)."""
        data_format, data = render_data(self.data)
        return {
            **self.summary(),
            "delivery_attempts": self.delivery_attempts,
            "original_message_id": self.attributes.get(DEAD_LETTER_ATTR + "message-id"),
            "attributes": dict(sorted(self.attributes.items())),
            "data_bytes": len(self.data),
            "data_format": data_format,
            "data": data,
        }


def safe_text(text: str, keep: str = "") -> str:
    """`text` with every non-printable character (terminal escape sequences, C1 controls, ...) except those in
    `keep` written as a Python escape: what a message carries is never written raw to an operator's terminal."""
    return "".join(c if c.isprintable() or c in keep else c.encode("unicode_escape").decode("ascii") for c in text)


def excerpt(data: bytes, limit: int = EXCERPT_BYTES) -> str:
    """The first `limit` bytes as text that is safe on a terminal: invalid UTF-8 and control characters are shown
    escaped (`safe_text`); newlines and tabs are kept."""
    text = safe_text(data[:limit].decode("utf-8", errors="backslashreplace"), keep="\n\t")
    return text + (f"… ({len(data)} bytes)" if len(data) > limit else "")


def render_data(data: bytes) -> tuple[str, Any]:
    """("json", the parsed value) when the data is JSON, else ("text" or "binary", a safe excerpt)."""
    try:
        return "json", json.loads(data)
    except ValueError:  # not UTF-8 (UnicodeDecodeError) or not JSON (JSONDecodeError)
        pass
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "binary", excerpt(data)
    return "text", excerpt(data)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: an ISO 8601 time (UTC when it has no offset; a date alone is its midnight) or a duration back
    from `now` (`90s`, `30m`, `2h`, `1d`, `1w`, combined as `1h30m`). Raises ValueError for anything else, and for
    a time in the future (it would match nothing: most likely a typo)."""
    value = text.strip()
    compact = value.replace(" ", "").lower()
    if compact and _DURATION_PART.sub("", compact) == "":
        seconds = sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION_PART.findall(compact))
        return now - timedelta(seconds=seconds)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"--since {text!r} is neither an ISO 8601 time (2026-11-20T09:30:00Z) nor a duration (30m, 2h, 1d)"
        ) from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    if at > now:
        raise ValueError(f"--since {text!r} is in the future ({at.isoformat()})")
    return at


@dataclass(frozen=True)
class Filter:
    reasons: frozenset[str] = frozenset()
    job_ids: frozenset[str] = frozenset()
    event_types: frozenset[str] = frozenset()
    #: only dead letters published (dead-lettered) at or after this time
    since: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (not self.reasons or letter.reason in self.reasons)
            and (not self.job_ids or letter.job_id in self.job_ids)
            and (not self.event_types or letter.event_type in self.event_types)
            and (self.since is None or letter.published_at >= self.since)
        )

    def describe(self) -> dict[str, Any]:
        """The filter as the audit trail records it."""
        return {
            "reasons": sorted(self.reasons),
            "job_ids": sorted(self.job_ids),
            "event_types": sorted(self.event_types),
            "since": self.since.isoformat() if self.since else None,
        }


def select(letters: Iterable[DeadLetter], flt: Filter, limit: int | None = None) -> list[DeadLetter]:
    """The letters the filter matches, oldest first, at most `limit` of them."""
    chosen = sorted((letter for letter in letters if flt.matches(letter)), key=lambda letter: letter.published_at)
    return chosen if limit is None else chosen[:limit]


def replay_attributes(letter: DeadLetter, replay_id: str, operator: str, at: datetime) -> dict[str, str]:
    """The attributes a replayed message is published with (pure)."""
    kept = {
        k: v
        for k, v in letter.attributes.items()
        if not k.startswith(DEAD_LETTER_ATTR) and not k.startswith(PUBSUB_DEAD_LETTER_PREFIX)
    }
    kept.update(
        {
            REPLAY_ATTR + "id": replay_id,
            REPLAY_ATTR + "by": operator,
            REPLAY_ATTR + "at": at.isoformat(),
            REPLAY_ATTR + "from": letter.subscription,
        }
    )
    return kept
