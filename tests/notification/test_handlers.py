"""Notification handler against a real local HTTP receiver: signed webhooks, policy refusals, retries."""

from __future__ import annotations

import json
import time
from functools import partial

import pytest

from speakerline import events
from notification import handlers
from notification.main import send
from notification.signing import verify
from notification.url_policy import check_url

SECRET = "s3cret"


def _deps(
    published: list, *, allow_private: bool = True, discord: str | None = None, secret: str | None = SECRET
) -> handlers.NotificationDeps:
    return handlers.NotificationDeps(
        source="//speakerline/services/notification",
        signing_secret=secret,
        discord_url=discord,
        slack_url=None,
        check_url=partial(check_url, allow_private=allow_private),
        send=partial(send, timeout_s=5),
        publish=published.extend,
        now=lambda: int(time.time()),
    )


def _outcome(example, kind: str, webhook: str | None) -> events.CloudEvent:  # type: ignore[no-untyped-def]
    data = example(kind)
    if webhook:
        data["request"]["webhook_url"] = webhook
    else:
        data["request"].pop("webhook_url", None)
    return events.new_event(f"io.speakerline.{kind}.v1", data, source="//t")


def test_completed_job_is_posted_signed_to_the_webhook_and_to_discord(webhook_receiver, example) -> None:
    event = _outcome(example, "job.completed", webhook_receiver.url("/hook"))
    reports = handlers.on_job_outcome(event, _deps([], discord=webhook_receiver.url("/discord")))
    assert [events.data_of(r)["channel"] for r in reports] == ["webhook", "discord"]
    assert all(r["type"] == handlers.DELIVERED for r in reports)
    (path, headers, body), (dpath, _, dbody) = webhook_receiver.requests
    assert path == "/hook" and dpath == "/discord"
    assert verify(body, headers["Speakerline-Signature"], SECRET, int(time.time()))
    assert json.loads(body)["id"] == event["id"] and json.loads(body)["type"] == event["type"]
    assert headers["Speakerline-Event-Id"] == event["id"]
    discord = json.loads(dbody)
    assert "embeds" in discord and discord["allowed_mentions"] == {"parse": []}
    assert events.data_of(reports[0])["target"] == "127.0.0.1"


def test_private_targets_are_refused_unless_allowed(webhook_receiver, example) -> None:
    event = _outcome(example, "job.failed", webhook_receiver.url("/hook"))
    (report,) = handlers.on_job_outcome(event, _deps([], allow_private=False))
    assert report["type"] == handlers.FAILED
    assert events.data_of(report)["error"] == {
        "code": "private_address",
        "message": events.data_of(report)["error"]["message"],
        "retriable": False,
    }
    assert webhook_receiver.requests == []


def test_a_client_error_is_reported_not_retried(webhook_receiver, example) -> None:
    webhook_receiver.status = 404
    (report,) = handlers.on_job_outcome(_outcome(example, "job.rejected", webhook_receiver.url("/gone")), _deps([]))
    assert report["type"] == handlers.FAILED
    assert events.data_of(report)["error"]["retriable"] is False


def test_a_server_error_retries_through_pubsub_then_reports_failure(webhook_receiver, example) -> None:
    webhook_receiver.status = 503
    event = _outcome(example, "job.completed", webhook_receiver.url("/flaky"))
    with pytest.raises(handlers.RetriableDeliveryFailure) as exc:
        handlers.on_job_outcome(event, _deps([]))
    (report,) = handlers.on_exhausted(event, exc.value, _deps([]))
    assert report["type"] == handlers.FAILED
    assert events.data_of(report)["error"]["retriable"] is True


def test_without_a_signing_secret_webhooks_are_refused(webhook_receiver, example) -> None:
    (report,) = handlers.on_job_outcome(
        _outcome(example, "job.completed", webhook_receiver.url("/h")), _deps([], secret=None)
    )
    assert events.data_of(report)["error"]["code"] == "signing_secret_missing"
    assert webhook_receiver.requests == []


def test_no_channels_means_no_reports(example) -> None:
    assert handlers.on_job_outcome(_outcome(example, "job.completed", None), _deps([])) == []
