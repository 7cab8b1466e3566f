"""Notification: tell the producer's webhook and the team's Discord/Slack how a job ended.

Every channel is vetted by the URL policy (no loopback/private/link-local targets unless allowed), webhook
bodies are signed. A channel that fails in a retriable way makes the whole message retry through Pub/Sub's
backoff (the channels that already succeeded are delivered again: receivers deduplicate on the event id, see
WEBHOOKS.md); on the last attempt `notification.failed` is emitted and the message goes to the dead-letter topic.
A non-retriable failure (404, refused URL) is reported at once and not retried.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from speakerline import runtime
from speakerline.events import CloudEvent, caused_event, data_of, to_structured_json
from notification.delivery import DeliveryResult
from notification.payloads import (
    JobOutcome,
    OutcomeSummary,
    SpeakerShare,
    discord_payload,
    format_duration,
    slack_payload,
    webhook_body,
)
from notification.signing import signature_headers
from notification.url_policy import UrlDecision

OUTCOMES = {
    "io.speakerline.job.completed.v1": "completed",
    "io.speakerline.job.failed.v1": "failed",
    "io.speakerline.job.rejected.v1": "rejected",
}
DELIVERED = "io.speakerline.notification.delivered.v1"
FAILED = "io.speakerline.notification.failed.v1"
ChannelName = Literal["webhook", "discord", "slack"]


@dataclass(frozen=True)
class Channel:
    name: ChannelName
    url: str


@dataclass(frozen=True)
class NotificationDeps:
    source: str
    signing_secret: str | None
    discord_url: str | None
    slack_url: str | None
    check_url: Callable[[str], UrlDecision]
    send: Callable[[str, bytes, dict[str, str], UrlDecision], DeliveryResult]
    publish: Callable[[Sequence[CloudEvent]], Any]
    now: Callable[[], int]


class RetriableDeliveryFailure(Exception):
    def __init__(self, failures: list[tuple[Channel, str, str]]) -> None:
        super().__init__("; ".join(f"{c.name}: {code}: {message}" for c, code, message in failures))
        self.failures = failures


def channels_for(event: CloudEvent, deps: NotificationDeps) -> list[Channel]:
    channels: list[Channel] = []
    webhook = (data_of(event).get("request") or {}).get("webhook_url")
    if webhook:
        channels.append(Channel("webhook", webhook))
    if deps.discord_url:
        channels.append(Channel("discord", deps.discord_url))
    if deps.slack_url:
        channels.append(Channel("slack", deps.slack_url))
    return channels


def job_outcome(event: CloudEvent) -> JobOutcome:
    data = data_of(event)
    kind = OUTCOMES[event["type"]]
    request = data.get("request") or {}
    extra = [("Input", request["input"].get("filename") or request["input"]["uri"])] if request else []
    if request.get("correlation_id"):
        extra.append(("Correlation id", request["correlation_id"]))
    if kind == "completed":
        summary = data["result"]["summary"]
        outcome_summary = OutcomeSummary(
            num_speakers=summary["num_speakers"],
            duration_s=summary["duration_s"],
            speakers=tuple(SpeakerShare(s["speaker"], s["share"], s["talk_time_s"]) for s in summary["speakers"]),
        )
        message = f"{summary['num_speakers']} speaker(s) found in {format_duration(summary['duration_s'])} of audio."
        return JobOutcome(
            "completed",
            data["job_id"],
            message,
            output_uri=data["result"]["output_uri"],
            summary=outcome_summary,
            extra_fields=tuple(extra),
        )
    error = data["error"]
    return JobOutcome(
        "failed" if kind == "failed" else "rejected",
        data["job_id"],
        error["message"],
        error_code=error["code"],
        error_message=error["message"],
        extra_fields=tuple(extra),
    )


def render(channel: Channel, event: CloudEvent, deps: NotificationDeps) -> tuple[bytes, dict[str, str]] | str:
    """The request body and headers for a channel, or the error code why it cannot be sent."""
    if channel.name == "webhook":
        if not deps.signing_secret:
            return "signing_secret_missing"
        body = webhook_body(json.loads(to_structured_json(event)))
        headers = signature_headers(
            body, deps.signing_secret, deps.now(), event_id=event["id"], event_type=event["type"]
        )
        return body, headers
    payload = discord_payload(job_outcome(event)) if channel.name == "discord" else slack_payload(job_outcome(event))
    return json.dumps(payload).encode(), {"Content-Type": "application/json"}


def _report(
    event: CloudEvent,
    deps: NotificationDeps,
    channel: Channel,
    host: str,
    *,
    status_code: int | None = None,
    error: tuple[str, str, bool] | None = None,
) -> CloudEvent:
    data: dict[str, Any] = {
        "job_id": data_of(event)["job_id"],
        "channel": channel.name,
        "target": host,
        "attempt": runtime.delivery_attempt() or 1,
        "notified_event": {"id": event["id"], "type": event["type"]},
    }
    if error is None:
        event_type = DELIVERED
        if status_code is not None:
            data["status_code"] = status_code
    else:
        event_type = FAILED
        data["error"] = {"code": error[0], "message": error[1][:2000], "retriable": error[2]}
    return caused_event(
        event, event_type, data, source=deps.source, discriminator=f"{channel.name}:{data['attempt'] if error else ''}"
    )


def on_job_outcome(event: CloudEvent, deps: NotificationDeps) -> list[CloudEvent]:
    reports: list[CloudEvent] = []
    retry: list[tuple[Channel, str, str]] = []
    for channel in channels_for(event, deps):
        decision = deps.check_url(channel.url)
        if not decision.allowed:
            reports.append(_report(event, deps, channel, decision.host, error=(decision.code, decision.message, False)))
            continue
        rendered = render(channel, event, deps)
        if isinstance(rendered, str):
            message = (
                "No webhook signing secret is configured (SPEAKERLINE_WEBHOOK_SIGNING_KEY); refusing to send unsigned."
            )
            reports.append(_report(event, deps, channel, decision.host, error=(rendered, message, False)))
            continue
        result = deps.send(channel.url, rendered[0], rendered[1], decision)
        if result.ok:
            reports.append(_report(event, deps, channel, decision.host, status_code=result.status_code))
        elif result.retriable:
            retry.append((channel, result.error_code or "delivery_failed", result.message))
        else:
            error = (result.error_code or "delivery_failed", result.message, False)
            reports.append(_report(event, deps, channel, decision.host, error=error))
    if retry:
        deps.publish(reports)  # what is settled is reported now; the rest retries with Pub/Sub's backoff
        raise RetriableDeliveryFailure(retry)
    return reports


def on_exhausted(event: CloudEvent, error: BaseException, deps: NotificationDeps) -> list[CloudEvent]:
    if not isinstance(error, RetriableDeliveryFailure):
        return []
    return [
        _report(event, deps, channel, deps.check_url(channel.url).host, error=(code, message, True))
        for channel, code, message in error.failures
    ]
