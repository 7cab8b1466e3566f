"""Wiring of the notification service (done once per process) and its two entry points."""

from __future__ import annotations

import os
import time
from functools import partial

import functions_framework

from speakerline import runtime, service
from notification import handlers
from notification.delivery import DeliveryResult, deliver, pinned_session
from notification.url_policy import UrlDecision, check_url

NAME = "notification"


def send(url: str, body: bytes, headers: dict[str, str], decision: UrlDecision, timeout_s: float) -> DeliveryResult:
    # Connect to the address the policy vetted, so a DNS answer that changes in between cannot redirect us.
    with pinned_session(decision.host, decision.addresses[0]) as session:
        return deliver(url, body, headers, timeout_s=timeout_s, session=session)


@service.lazy
def build() -> runtime.ServiceDef:
    settings = service.Settings.from_env()
    publisher = service.publisher(settings)
    allowed_hosts = frozenset(h for h in os.environ.get("SPEAKERLINE_WEBHOOK_ALLOWED_HOSTS", "").split(",") if h)
    deps = handlers.NotificationDeps(
        source=settings.source(NAME),
        signing_secret=service.secret("SPEAKERLINE_WEBHOOK_SIGNING_KEY"),
        discord_url=service.secret("SPEAKERLINE_DISCORD_WEBHOOK_URL"),
        slack_url=service.secret("SPEAKERLINE_SLACK_WEBHOOK_URL"),
        check_url=partial(
            check_url,
            allow_private=service.env_flag("SPEAKERLINE_ALLOW_PRIVATE_WEBHOOKS"),
            allowed_hosts=allowed_hosts,
        ),
        send=partial(send, timeout_s=float(os.environ.get("SPEAKERLINE_WEBHOOK_TIMEOUT_S", "10"))),
        publish=publisher.publish,
        now=lambda: int(time.time()),
    )
    route = runtime.Route(
        partial(handlers.on_job_outcome, deps=deps),
        frozenset(handlers.OUTCOMES),
        on_exhausted=partial(handlers.on_exhausted, deps=deps),
    )
    return runtime.ServiceDef(name=NAME, routes={"job_outcome": route}, publisher=publisher, topology=settings.topology)


entrypoint = functions_framework.cloud_event(service.push_entrypoint(NAME, build))
http_entrypoint = functions_framework.http(service.push_http_entrypoint(NAME, build))


def main() -> None:
    service.run_worker(NAME, build)
