"""Notification: tell the producer's webhook and the team's Discord/Slack how a job ended.

Every channel is vetted by the URL policy (no loopback/private/link-local targets unless allowed), webhook
bodies are signed. `on_job_outcome` is a generator: each channel's report (`notification.delivered`, or
`notification.failed` for a refusal or a non-retriable failure such as a 404) is yielded, and so published by the
runtime, as soon as that channel is settled. A channel that fails in a retriable way is tried again through
Pub/Sub's backoff: after every channel was tried, `RetriableDeliveryFailure` is raised, once the settled channels'
reports are out, so a retry loses none of them. On the retry the channels that already succeeded are delivered
again only if the delivery ledger (`ledger.py`) has no record of it; either way their report goes out again
with the same id as before (consumers deduplicate it), in case the attempt that delivered died before
publishing it. On the last attempt `on_exhausted` emits `notification.failed` for each channel
still failing, and the message goes to the dead-letter topic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from notification.delivery import DeliveryResult
from notification.ledger import DeliveryLedger
from notification.payloads import (
    JobOutcome,
    OutcomeType,
    discord_payload,
    format_duration,
    slack_payload,
    webhook_body,
)
from notification.signing import signature_headers
from notification.url_policy import UrlDecision
from speakerline import runtime
from speakerline.events import (
    Event,
    JobCompleted,
    JobFailed,
    JobRejected,
    NotificationDelivered,
    NotificationFailed,
    models,
    to_structured_json,
)

JobOutcomeEvent = JobCompleted | JobFailed | JobRejected

OUTCOMES: dict[str, OutcomeType] = {
    JobCompleted.TYPE: "completed",
    JobFailed.TYPE: "failed",
    JobRejected.TYPE: "rejected",
}


@dataclass(frozen=True)
class Channel:
    name: models.Channel
    url: str


@dataclass(frozen=True)
class NotificationDeps:
    source: str
    signing_secret: str  # the wiring refuses to start without one
    discord_url: str | None
    slack_url: str | None
    check_url: Callable[[str], UrlDecision]
    send: Callable[[str, bytes, dict[str, str], UrlDecision], DeliveryResult]
    now: Callable[[], int]
    ledger: DeliveryLedger
    #: keys being rotated out: each webhook also carries a signature made with them (docs/deploy.md)
    previous_signing_secrets: tuple[str, ...] = ()
    #: called between two channels: a fault-injection point of the local stack's fault tests (no-op elsewhere)
    between_channels: Callable[[str], None] = lambda job_id: None


@dataclass(frozen=True)
class PendingChannel:
    """A channel whose delivery failed in a retriable way on this attempt."""

    channel: Channel
    host: str
    code: str
    message: str


class RetriableDeliveryFailure(Exception):
    def __init__(self, failures: list[PendingChannel]) -> None:
        super().__init__("; ".join(f"{f.channel.name}: {f.code}: {f.message}" for f in failures))
        self.failures = failures


def channels_for(event: JobOutcomeEvent, deps: NotificationDeps) -> list[Channel]:
    channels: list[Channel] = []
    request = event.data.request
    if request is not None and request.webhook_url:
        channels.append(Channel(models.Channel.webhook, request.webhook_url))
    if deps.discord_url:
        channels.append(Channel(models.Channel.discord, deps.discord_url))
    if deps.slack_url:
        channels.append(Channel(models.Channel.slack, deps.slack_url))
    return channels


def job_outcome(event: JobOutcomeEvent) -> JobOutcome:
    kind = OUTCOMES[event.TYPE]
    request = event.data.request
    extra = [("Input", request.input.filename or request.input.uri)] if request else []
    if request and request.correlation_id:
        extra.append(("Correlation id", request.correlation_id))
    if isinstance(event, JobCompleted):
        summary = event.data.result.summary
        message = f"{summary.num_speakers} speaker(s) found in {format_duration(summary.duration_s)} of audio."
        return JobOutcome(
            kind,
            event.data.job_id,
            message,
            output_uri=event.data.result.output_uri,
            summary=summary,
            extra_fields=tuple(extra),
        )
    error = event.data.error
    return JobOutcome(
        kind,
        event.data.job_id,
        error.message,
        error_code=error.code,
        error_message=error.message,
        extra_fields=tuple(extra),
    )


def render(channel: Channel, event: JobOutcomeEvent, deps: NotificationDeps) -> tuple[bytes, dict[str, str]]:
    """The request body and headers for a channel."""
    if channel.name == models.Channel.webhook:
        body = webhook_body(json.loads(to_structured_json(event.to_cloudevent())))
        headers = signature_headers(
            body,
            deps.signing_secret,
            deps.now(),
            event_id=event.id,
            event_type=event.TYPE,
            previous=deps.previous_signing_secrets,
        )
        return body, headers
    outcome = job_outcome(event)
    payload = discord_payload(outcome) if channel.name == models.Channel.discord else slack_payload(outcome)
    return json.dumps(payload).encode(), {"Content-Type": "application/json"}


def _delivered(
    event: JobOutcomeEvent,
    context: runtime.Context,
    deps: NotificationDeps,
    channel: Channel,
    host: str,
    status_code: int | None,
) -> NotificationDelivered:
    optional: dict[str, Any] = {} if status_code is None else {"status_code": status_code}
    data = models.NotificationDeliveredV1Data(
        job_id=event.data.job_id,
        channel=channel.name,
        target=host,
        attempt=context.attempt,
        notified_event=models.NotifiedEvent(id=event.id, type=event.TYPE),
        **optional,
    )
    # Without the attempt in the discriminator: a retry that delivers again reports with the same id.
    return NotificationDelivered.caused_by(event, data, source=deps.source, discriminator=f"{channel.name}:")


def _failed(
    event: JobOutcomeEvent,
    context: runtime.Context,
    deps: NotificationDeps,
    channel: Channel,
    host: str,
    error: tuple[str, str, bool],
) -> NotificationFailed:
    code, message, retriable = error
    data = models.NotificationFailedV1Data(
        job_id=event.data.job_id,
        channel=channel.name,
        target=host,
        error=models.NotificationFailedError(code=code, message=message[:2000], retriable=retriable),
        attempt=context.attempt,
        notified_event=models.NotifiedEvent(id=event.id, type=event.TYPE),
    )
    return NotificationFailed.caused_by(
        event, data, source=deps.source, discriminator=f"{channel.name}:{context.attempt}"
    )


def on_job_outcome(event: JobOutcomeEvent, context: runtime.Context, deps: NotificationDeps) -> Iterator[Event[Any]]:
    """Notify every channel of a job outcome, yielding each channel's report as soon as it is settled."""
    retry: list[PendingChannel] = []
    for index, channel in enumerate(channels_for(event, deps)):
        if index:
            deps.between_channels(event.data.job_id)
        decision = deps.check_url(channel.url)
        if not decision.allowed:
            yield _failed(event, context, deps, channel, decision.host, (decision.code, decision.message, False))
            continue
        past = deps.ledger.delivered(event.id, channel.name.value)
        if past is not None:  # an earlier attempt delivered it: report again (same id), do not send again
            yield _delivered(event, context, deps, channel, decision.host, past.status_code)
            continue
        body, headers = render(channel, event, deps)
        result = deps.send(channel.url, body, headers, decision)
        if result.ok:
            deps.ledger.record(event.id, channel.name.value, event.data.job_id, result.status_code)
            yield _delivered(event, context, deps, channel, decision.host, result.status_code)
        elif result.retriable:
            retry.append(PendingChannel(channel, decision.host, result.error_code or "delivery_failed", result.message))
        else:
            error = (result.error_code or "delivery_failed", result.message, False)
            yield _failed(event, context, deps, channel, decision.host, error)
    if retry:
        # Raised after the loop, so that one flaky channel neither hides nor delays the others: what is settled
        # has been yielded (and published), the rest retries with Pub/Sub's backoff.
        raise RetriableDeliveryFailure(retry)


def on_exhausted(
    event: JobOutcomeEvent, context: runtime.Context, error: BaseException, deps: NotificationDeps
) -> list[Event[Any]]:
    """The last attempt failed: `notification.failed` (retriable) for each channel that was still failing."""
    if not isinstance(error, RetriableDeliveryFailure):
        return []
    return [_failed(event, context, deps, f.channel, f.host, (f.code, f.message, True)) for f in error.failures]
