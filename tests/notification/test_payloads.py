import json

import pytest

from notification.payloads import (
    DISCORD_COLORS,
    JobOutcome,
    discord_payload,
    format_duration,
    slack_payload,
    webhook_body,
)
from speakerline.events import models


def _speaker(speaker: str, share: float, talk_time_s: float = 5.0) -> models.Speaker:
    return models.Speaker(speaker=speaker, talk_time_s=talk_time_s, share=share, num_segments=1)


def _summary(num_speakers: int, duration_s: float, speakers: list[models.Speaker]) -> models.Summary:
    """The job.completed summary (the one summary type: payloads read the event's)."""
    return models.Summary(
        duration_s=duration_s,
        num_speakers=num_speakers,
        num_segments=len(speakers),
        speech_s=sum(s.talk_time_s for s in speakers),
        overlap_s=0.0,
        speakers=speakers,
    )


SUMMARY = _summary(2, 754.2, [_speaker("SPEAKER_01", 0.38, 250.0), _speaker("SPEAKER_00", 0.62, 410.5)])
COMPLETED = JobOutcome(
    "completed",
    "job-42",
    "Diarization finished in 41 s.",
    output_uri="gs://speakerline-out/jobs/job-42/output.json",
    output_url="https://storage.googleapis.com/speakerline-out/jobs/job-42/output.json?X-Goog-Signature=abc",
    summary=SUMMARY,
    extra_fields=(("Input", "standup_2024.mp3"),),
)
FAILED = JobOutcome(
    "failed", "job-43", "Diarization failed after 3 attempts.", error_code="engine_error", error_message="CUDA OOM"
)
REJECTED = JobOutcome(
    "rejected", "job-44", "The input is not audio.", error_code="unsupported_media", error_message="no audio stream"
)


def test_webhook_body_is_compact_structured_cloudevent():
    event = {"specversion": "1.0", "id": "e1", "source": "/speakerline", "type": "t", "data": {"name": "réunion"}}
    body = webhook_body(event)
    assert (
        body == '{"specversion":"1.0","id":"e1","source":"/speakerline","type":"t","data":{"name":"réunion"}}'.encode()
    )
    assert json.loads(body) == event
    with pytest.raises(ValueError, match="id"):
        webhook_body({"specversion": "1.0", "source": "s", "type": "t"})


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (42.4, "0:42"), (754.2, "12:34"), (3723, "1:02:03")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_discord_completed_message_is_helpful():
    payload = discord_payload(COMPLETED)
    assert payload["content"] == "✅ Diarization job `job-42` finished: 2 speakers in 12:34 of audio"
    assert payload["allowed_mentions"] == {"parse": []}
    (embed,) = payload["embeds"]
    assert embed["color"] == DISCORD_COLORS["completed"] == 0x2ECC71
    assert embed["title"] == "Job job-42 finished"
    assert embed["url"] == COMPLETED.output_url
    lines = embed["description"].splitlines()
    # Speakers ranked by share, with a bar, a percentage and talk time.
    assert lines[-2] == "`██████░░░░`  62% SPEAKER\\_00 · 6:50"
    assert lines[-1] == "`████░░░░░░`  38% SPEAKER\\_01 · 4:10"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Result"] == "`gs://speakerline-out/jobs/job-42/output.json`"
    assert fields["Download"].startswith("[output.json](https://storage.googleapis.com/")
    assert fields["Speakers"] == "2" and fields["Audio duration"] == "12:34"
    assert fields["Input"] == "standup\\_2024.mp3"


def test_discord_failed_and_rejected_are_red_with_error_and_hint():
    for outcome in (FAILED, REJECTED):
        payload = discord_payload(outcome)
        embed = payload["embeds"][0]
        assert embed["color"] == 0xE74C3C
        assert outcome.error_code in payload["content"]
        assert f"**Error:** {outcome.error_message}" in embed["description"]
        assert "url" not in embed
        assert {f["name"] for f in embed["fields"]} == {"Job ID", "Error code"}
    assert "submit a new job" in discord_payload(REJECTED)["embeds"][0]["description"]
    assert discord_payload(FAILED)["content"].startswith("❌")


def test_discord_never_uses_gs_uri_as_embed_url():
    outcome = JobOutcome("completed", "j", "done", output_uri="gs://b/o.json", summary=SUMMARY)
    embed = discord_payload(outcome)["embeds"][0]
    assert "url" not in embed
    assert "Download" not in {f["name"] for f in embed["fields"]}


def test_discord_escapes_markdown_and_mentions():
    outcome = JobOutcome("failed", "j", "**bold** @everyone", error_message="`rm` [x](http://evil)")
    payload = discord_payload(outcome)
    description = payload["embeds"][0]["description"]
    assert "\\*\\*bold\\*\\* @everyone" in description
    assert "\\`rm\\` \\[x\\](http://evil)" in description
    assert payload["allowed_mentions"] == {"parse": []}


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_discord_limits_are_respected_for_huge_inputs():
    many = [_speaker(f"S{i}", 1 / 40, 10.0) for i in range(40)]
    outcome = JobOutcome(
        "failed",
        "j" * 3000,
        "m😀" * 5000,
        error_code="c" * 3000,
        error_message="e" * 10000,
        summary=_summary(40, 100, many),
        extra_fields=tuple((f"k{i}" * 100, "v" * 2000) for i in range(40)),
    )
    payload = discord_payload(outcome)
    embed = payload["embeds"][0]
    assert utf16_len(payload["content"]) <= 2000
    assert utf16_len(embed["title"]) <= 256
    assert utf16_len(embed["description"]) <= 4096
    assert len(embed["fields"]) <= 25
    assert all(utf16_len(f["name"]) <= 256 and utf16_len(f["value"]) <= 1024 for f in embed["fields"])
    total = utf16_len(embed["title"] + embed["description"]) + sum(
        utf16_len(f["name"] + f["value"]) for f in embed["fields"]
    )
    assert total <= 6000
    json.dumps(payload)


def test_many_speakers_are_summarised_not_listed():
    many = [_speaker(f"SPEAKER_{i:02d}", 1 / 12) for i in range(12)]
    description = discord_payload(JobOutcome("completed", "j", "", summary=_summary(12, 60, many)))["embeds"][0][
        "description"
    ]
    assert "…and 2 more speakers (17%)" in description
    assert description.count("%") == 11


def test_slack_completed():
    payload = slack_payload(COMPLETED)
    assert payload["text"] == "✅ Diarization job `job-42` finished: 2 speakers in 12:34 of audio"
    types = [b["type"] for b in payload["blocks"]]
    assert types == ["header", "section", "section", "actions"]
    assert payload["blocks"][-1]["elements"][0]["url"] == COMPLETED.output_url
    assert "SPEAKER_00 · 6:50" in payload["blocks"][1]["text"]["text"]
    assert any("gs://speakerline-out" in f["text"] for f in payload["blocks"][2]["fields"])


def test_slack_failed_escapes_control_characters_and_respects_limits():
    outcome = JobOutcome("failed", "j<&>", "<!channel> & co", error_code="x", error_message="e" * 9000)
    payload = slack_payload(outcome)
    assert "<!channel>" not in json.dumps(payload)
    assert "&lt;!channel&gt; &amp; co" in payload["blocks"][1]["text"]["text"]
    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    assert utf16_len(payload["blocks"][1]["text"]["text"]) <= 3000
    assert not any(b["type"] == "actions" for b in payload["blocks"])


def test_output_json_summary_reads_as_the_event_summary():
    from postprocess.timeline_rules import build_output, speech_stats, summarize
    from speakerline.timeline import Turn

    turns = [Turn(0, 3, "SPEAKER_00"), Turn(3, 4, "SPEAKER_01")]
    stats = speech_stats(turns, 5.0)
    document = json.loads(json.dumps(build_output(turns, summarize(stats), "job-1", stats=stats)))["summary"]
    outcome_summary = models.Summary.model_validate(document)  # output.json's summary is the event's Summary
    assert outcome_summary.num_speakers == 2 and outcome_summary.duration_s == 5.0
    first = outcome_summary.speakers[0]
    assert (first.speaker, first.share, first.talk_time_s) == ("SPEAKER_00", 0.75, 3.0)
    assert document["speakers"][0]["share_of_speech"] == 0.75  # the older key, kept for output.json's readers
    lines = discord_payload(JobOutcome("completed", "job-1", "", summary=outcome_summary))["embeds"][0]["description"]
    assert "75% SPEAKER\\_00 · 0:03" in lines
