"""Wiring of the notification service: its one route and the deps it is built from (see speakerline.bootstrap)."""

from __future__ import annotations

import time
from functools import partial

from notification import delivery, handlers
from notification.ledger import FirestoreLedger
from notification.url_policy import check_url
from speakerline import failpoints, runtime
from speakerline.bootstrap import ConfigurationError, Platform, Wiring
from speakerline.events import JobCompleted, JobFailed, JobRejected


def build_deps(platform: Platform) -> handlers.NotificationDeps:
    """The handler's deps, from the platform's adapters, settings and secrets; no signing key is a configuration
    error."""
    settings = platform.settings
    signing_key = platform.secret("webhook_signing_key")
    if not signing_key:
        # Refused here, at start-up: a missing key must stop a deployment, not fail every job's webhook.
        raise ConfigurationError(
            "no webhook signing key: set SPEAKERLINE_WEBHOOK_SIGNING_KEY, or SPEAKERLINE_WEBHOOK_SIGNING_KEY_SECRET "
            "to a Secret Manager version (the local stack generates one)"
        )
    # During a key rotation: the key being rotated out signs too, until receivers have the new one.
    previous_key = platform.secret("webhook_signing_key_previous")
    allowed_hosts = frozenset(h.strip() for h in settings.webhook_allowed_hosts.split(",") if h.strip())
    return handlers.NotificationDeps(
        source=platform.source,
        signing_secret=signing_key,
        previous_signing_secrets=(previous_key,) if previous_key else (),
        discord_url=platform.secret("discord_webhook_url"),
        slack_url=platform.secret("slack_webhook_url"),
        check_url=partial(check_url, allow_private=settings.allow_private_webhooks, allowed_hosts=allowed_hosts),
        send=partial(delivery.send, timeout_s=settings.webhook_timeout_s),
        now=lambda: int(time.time()),
        ledger=FirestoreLedger(lambda: platform.firestore),
        between_channels=partial(failpoints.reached, "notification.between_channels"),
    )


def wire(platform: Platform) -> Wiring:
    deps = build_deps(platform)
    route = runtime.Route(
        partial(handlers.on_job_outcome, deps=deps),
        accepts=(JobCompleted, JobFailed, JobRejected),
        on_exhausted=partial(handlers.on_exhausted, deps=deps),
    )
    # "on_job_outcome": the handler of the notification-job-outcomes subscription in infra/topology.yaml
    return Wiring(routes={"on_job_outcome": route})
