"""Notification handler against a real local HTTP receiver: signed webhooks, policy refusals, retries."""

from __future__ import annotations

import dataclasses
import json
import time
from functools import partial

import pytest

from notification import handlers
from notification.delivery import send
from notification.signing import verify
from notification.url_policy import check_url
from speakerline import events, runtime
from speakerline.bootstrap import ConfigurationError, Platform, build_service
from speakerline.events import models
from speakerline.settings import Settings
from tests.fakes import MemoryBlobStore, MemoryFirestore, MemoryLedger, RecordingPublisher, handler_context

SECRET = "s3cret"
OUTCOME_CLASSES = {
    "job.completed": events.JobCompleted,
    "job.failed": events.JobFailed,
    "job.rejected": events.JobRejected,
}


def _deps(
    *,
    allow_private: bool = True,
    discord: str | None = None,
    slack: str | None = None,
    ledger: MemoryLedger | None = None,
) -> handlers.NotificationDeps:
    return handlers.NotificationDeps(
        source="//speakerline/services/notification",
        signing_secret=SECRET,
        discord_url=discord,
        slack_url=slack,
        check_url=partial(check_url, allow_private=allow_private),
        send=partial(send, timeout_s=5),
        now=lambda: int(time.time()),
        ledger=ledger if ledger is not None else MemoryLedger(),
    )


def _outcome(example, kind: str, webhook: str | None) -> handlers.JobOutcomeEvent:  # type: ignore[no-untyped-def]
    data = example(kind)
    if webhook:
        data["request"]["webhook_url"] = webhook
    else:
        data["request"].pop("webhook_url", None)
    cls = OUTCOME_CLASSES[kind]
    return cls.new(cls.DATA.model_validate(data), source="//t")


def _run(event: handlers.JobOutcomeEvent, deps: handlers.NotificationDeps, attempt: int = 1) -> list:
    return list(handlers.on_job_outcome(event, handler_context(attempt), deps))


def test_completed_job_is_posted_signed_to_the_webhook_and_to_discord(webhook_receiver, example) -> None:
    event = _outcome(example, "job.completed", webhook_receiver.url("/hook"))
    reports = _run(event, _deps(discord=webhook_receiver.url("/discord")))
    assert [r.data.channel for r in reports] == ["webhook", "discord"]
    assert all(isinstance(r, events.NotificationDelivered) for r in reports)
    assert all(r.TYPE == events.NotificationDelivered.TYPE for r in reports)
    (path, headers, body), (dpath, _, dbody) = webhook_receiver.requests
    assert path == "/hook" and dpath == "/discord"
    assert verify(body, headers["Speakerline-Signature"], SECRET, int(time.time()))
    assert json.loads(body)["id"] == event.id and json.loads(body)["type"] == event.TYPE
    assert headers["Speakerline-Event-Id"] == event.id
    assert events.parse_json(body).payload() == event.payload()  # the webhook body is the job's CloudEvent
    discord = json.loads(dbody)
    assert "embeds" in discord and discord["allowed_mentions"] == {"parse": []}
    # The event's summary (speakers' `share`) is what the chat message shows.
    assert "SPEAKER\\_00 · 1:11" in discord["embeds"][0]["description"]
    assert " 45% " in discord["embeds"][0]["description"]
    assert reports[0].data.target == "127.0.0.1"
    assert reports[0].data.status_code == 200
    assert reports[0].data.notified_event == models.NotifiedEvent(id=event.id, type=event.TYPE)
    assert all(r.data.attempt == 1 for r in reports)
    for report in reports:
        report.to_cloudevent()  # valid against the notification.delivered schema


def test_reports_are_yielded_in_channel_order_as_each_channel_is_settled(webhook_receiver, example) -> None:
    event = _outcome(example, "job.completed", webhook_receiver.url("/hook"))
    deps = _deps(discord=webhook_receiver.url("/discord"), slack=webhook_receiver.url("/slack"))
    reports = handlers.on_job_outcome(event, handler_context(), deps)
    first = next(reports)
    # Yielded before the next channel is even tried: the runtime publishes it at once.
    assert first.data.channel == "webhook" and [p for p, _, _ in webhook_receiver.requests] == ["/hook"]
    assert [r.data.channel for r in reports] == ["discord", "slack"]
    assert [p for p, _, _ in webhook_receiver.requests] == ["/hook", "/discord", "/slack"]


def test_private_targets_are_refused_unless_allowed(webhook_receiver, example) -> None:
    event = _outcome(example, "job.failed", webhook_receiver.url("/hook"))
    (report,) = _run(event, _deps(allow_private=False))
    assert isinstance(report, events.NotificationFailed)
    assert report.payload()["error"] == {
        "code": "private_address",
        "message": report.data.error.message,
        "retriable": False,
    }
    assert webhook_receiver.requests == []


def test_a_client_error_is_reported_not_retried(webhook_receiver, example) -> None:
    webhook_receiver.status = 404
    (report,) = _run(_outcome(example, "job.rejected", webhook_receiver.url("/gone")), _deps())
    assert isinstance(report, events.NotificationFailed)
    assert report.data.error.retriable is False


def test_a_server_error_retries_through_pubsub_then_reports_failure(webhook_receiver, example) -> None:
    webhook_receiver.status = 503
    event = _outcome(example, "job.completed", webhook_receiver.url("/flaky"))
    with pytest.raises(handlers.RetriableDeliveryFailure) as exc:
        _run(event, _deps())
    last = handler_context(5, final=True)
    (report,) = handlers.on_exhausted(event, last, exc.value, _deps())
    assert isinstance(report, events.NotificationFailed)
    assert report.data.error.retriable is True
    assert report.data.attempt == 5 and report.data.channel == "webhook" and report.data.target == "127.0.0.1"
    assert handlers.on_exhausted(event, last, RuntimeError("not a delivery failure"), _deps()) == []


def test_a_retriable_failure_still_yields_the_channels_that_succeeded(webhook_receiver, example) -> None:
    flaky = type(webhook_receiver)()  # a second receiver, answering 503
    flaky.status = 503
    try:
        event = _outcome(example, "job.completed", webhook_receiver.url("/hook"))
        deps = _deps(discord=flaky.url("/discord"), slack=webhook_receiver.url("/slack"))
        yielded = []
        with pytest.raises(handlers.RetriableDeliveryFailure) as exc:
            for report in handlers.on_job_outcome(event, handler_context(), deps):
                yielded.append(report)
        # The flaky channel neither hides nor holds back the others: both are yielded, in channel order.
        assert [(type(r), r.data.channel) for r in yielded] == [
            (events.NotificationDelivered, "webhook"),
            (events.NotificationDelivered, "slack"),
        ]
        assert [(f.channel.name, f.code) for f in exc.value.failures] == [("discord", "server_error")]
        assert [p for p, _, _ in flaky.requests] == ["/discord"]
    finally:
        flaky.server.shutdown()


def test_report_ids_are_deterministic_per_channel_and_attempt(webhook_receiver, example) -> None:
    event = _outcome(example, "job.completed", webhook_receiver.url("/hook"))
    (first,) = _run(event, _deps())
    (again,) = _run(event, _deps(), attempt=2)
    assert first.id == again.id  # a retry that delivers again reports the same event: consumers deduplicate it
    refused = _outcome(example, "job.completed", "http://127.0.0.1:9/hook")
    (failed_1,) = _run(refused, _deps(allow_private=False))
    (failed_1_again,) = _run(refused, _deps(allow_private=False))
    (failed_2,) = _run(refused, _deps(allow_private=False), attempt=2)
    assert failed_1.id == failed_1_again.id and failed_1.id != failed_2.id


def test_without_a_signing_key_the_service_does_not_start() -> None:
    """A missing key is a start-up error (the deployment fails), never a per-job failure."""
    with pytest.raises(ConfigurationError, match="SPEAKERLINE_WEBHOOK_SIGNING_KEY"):
        build_service("notification", Settings(project="p"), publisher=RecordingPublisher(), blobs=MemoryBlobStore())


def test_a_redelivery_does_not_send_again_to_channels_that_got_the_event(webhook_receiver, example) -> None:
    """Killed between two channels, or retried because another channel failed: what the ledger says was
    delivered is reported again (same id: the report may not have gone out) but not sent again."""
    event = _outcome(example, "job.completed", webhook_receiver.url("/hook"))
    ledger = MemoryLedger()
    reached: list[str] = []
    deps = dataclasses.replace(
        _deps(slack=webhook_receiver.url("/slack"), ledger=ledger), between_channels=reached.append
    )
    reports = handlers.on_job_outcome(event, handler_context(), deps)
    first = next(reports)  # the webhook is delivered; the worker "dies" before the next channel
    reports.close()
    assert reached == [] and [p for p, _, _ in webhook_receiver.requests] == ["/hook"]
    again = _run(event, deps, attempt=2)
    assert [p for p, _, _ in webhook_receiver.requests] == ["/hook", "/slack"]  # the webhook only once
    assert [r.data.channel for r in again] == ["webhook", "slack"]
    assert again[0].id == first.id and again[0].data.status_code == 200
    assert reached == [event.data.job_id]  # the fault-injection point between the two channels
    assert sorted(channel for _, channel in ledger.records) == ["slack", "webhook"]


def test_no_channels_means_no_reports(example) -> None:
    assert _run(_outcome(example, "job.completed", None), _deps()) == []


@pytest.mark.parametrize(
    ("kind", "outcome_type"), [("job.completed", "completed"), ("job.failed", "failed"), ("job.rejected", "rejected")]
)
def test_each_outcome_event_is_reported_as_its_outcome(example, kind: str, outcome_type: str) -> None:
    outcome = handlers.job_outcome(_outcome(example, kind, None))
    assert outcome.outcome_type == outcome_type
    assert outcome.job_id == example(kind)["job_id"]


def test_build_service_wires_the_route_and_the_settings(webhook_receiver, example, monkeypatch) -> None:
    import notification.wiring

    flaky = type(webhook_receiver)()
    flaky.status = 503
    try:
        publisher = RecordingPublisher()
        settings = Settings(
            project="p",
            webhook_signing_key="k3y",
            slack_webhook_url=flaky.url("/slack"),
            allow_private_webhooks=True,
            webhook_allowed_hosts="hooks.example.com, other.example.com",
            webhook_timeout_s=3.5,
        )
        ledger = MemoryFirestore()  # the delivery ledger's Firestore: given to the platform, as every adapter
        service = build_service("notification", settings, publisher=publisher, firestore=ledger)
        route = service.routes["on_job_outcome"]
        assert route.accepts == (events.JobCompleted, events.JobFailed, events.JobRejected)
        deps = notification.wiring.build_deps(Platform("notification", settings))
        assert (deps.signing_secret, deps.discord_url, deps.slack_url) == ("k3y", None, flaky.url("/slack"))
        assert deps.previous_signing_secrets == ()
        rotating = Settings(project="p", webhook_signing_key="new", webhook_signing_key_previous="old")
        rotated_deps = notification.wiring.build_deps(Platform("notification", rotating))
        assert rotated_deps.previous_signing_secrets == ("old",)
        assert deps.send.keywords == {"timeout_s": 3.5}
        assert deps.check_url.keywords == {
            "allow_private": True,
            "allowed_hosts": frozenset({"hooks.example.com", "other.example.com"}),
        }
        assert deps.source == "//speakerline/services/notification"

        # Through the runtime: the webhook is signed with the configured key, and its report is published
        # although Slack then fails in a retriable way (the message is nacked for Pub/Sub to redeliver).
        event = _outcome(example, "job.completed", webhook_receiver.url("/hook"))
        body, attributes = events.to_pubsub(event)
        sub = settings.topology.subscriptions["notification-job-outcomes"]
        outcome = runtime.process(service, sub, runtime.Delivery(body, attributes, "m-1", 1))
        assert outcome is runtime.Outcome.NACK
        assert publisher.types() == [events.NotificationDelivered.TYPE]
        ((_, headers, sent),) = webhook_receiver.requests
        assert verify(sent, headers["Speakerline-Signature"], "k3y", int(time.time()))
        assert [p for p, _, _ in flaky.requests] == ["/slack"]
    finally:
        flaky.server.shutdown()
