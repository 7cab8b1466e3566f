"""Dead-letter filters and the attributes a replayed message carries."""

from __future__ import annotations

from datetime import UTC, datetime

from speakerline import events
from speakerline_tools.deadletters import DeadLetter, Filter, replay_attributes


def _letter(**attributes: str) -> DeadLetter:
    return DeadLetter("postprocess-diarization", "m1", "ack1", b"{}", attributes, "2026-11-20T09:30:00+00:00")


def test_reason_comes_from_the_runtime_or_means_retries_exhausted() -> None:
    assert _letter(**{"speakerline-dead-letter-reason": "schema_violation"}).reason == "schema_violation"
    exhausted = _letter(CloudPubSubDeadLetterSourceDeliveryCount="5", **{"ce-jobid": "job_x"})
    assert exhausted.reason == "retries_exhausted" and exhausted.replayable
    assert not _letter(**{"speakerline-dead-letter-reason": "not_a_cloudevent"}).replayable


def test_filters_combine() -> None:
    letter = _letter(**{"ce-jobid": "job_a", "ce-type": events.AudioIngested.TYPE})
    assert Filter().matches(letter)
    assert Filter(job_ids=frozenset({"job_a"}), reasons=frozenset({"retries_exhausted"})).matches(letter)
    assert not Filter(job_ids=frozenset({"job_b"})).matches(letter)
    assert not Filter(event_types=frozenset({events.JobFailed.TYPE})).matches(letter)


def test_replayed_attributes_drop_dead_letter_marks_and_record_the_replay() -> None:
    letter = _letter(**{
        "ce-id": "e1", "ce-type": "t", "content-type": "application/json",
        "CloudPubSubDeadLetterSourceSubscription": "s", "CloudPubSubDeadLetterSourceDeliveryCount": "5",
        "speakerline-dead-letter-reason": "x",
    })  # fmt: skip
    at = datetime(2026, 11, 22, tzinfo=UTC)
    attributes = replay_attributes(letter, "r1", "ops@host", at)
    assert attributes == {
        "ce-id": "e1", "ce-type": "t", "content-type": "application/json",
        "speakerline-replay-id": "r1", "speakerline-replay-by": "ops@host", "speakerline-replay-at": at.isoformat(),
        "speakerline-replay-from": "postprocess-diarization",
    }  # fmt: skip
