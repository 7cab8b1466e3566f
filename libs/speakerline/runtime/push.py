"""A service behind a Pub/Sub push subscription: the body of a push request (functions-framework, Cloud Run) to
its outcome."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from speakerline.events import InvalidEvent
from speakerline.runtime.outcomes import Delivery, Outcome, process
from speakerline.runtime.service import ServiceDef
from speakerline.topology import Subscription


class RedeliveryRequested(Exception):
    """Raised from a push entry point so that Pub/Sub redelivers."""


def _push_subscription(service: ServiceDef, subscription: str, topic: str) -> Subscription:
    """The subscription a push came through: named in the envelope, or found by topic among the service's."""
    name = subscription.rsplit("/", 1)[-1]
    if name in service.topology.subscriptions:
        return service.topology.subscriptions[name]
    topic = topic.rsplit("/", 1)[-1]
    for sub in service.topology.subscriptions_of(service.name):
        if sub.topic == topic:
            return sub
    raise InvalidEvent("unknown_subscription", f"push from {subscription or topic!r} matches no subscription")


def _timestamp(value: Any) -> float | None:
    """Unix seconds of an RFC 3339 time (a push envelope's publishTime), None when absent or unreadable."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() if value else None
    except ValueError:
        return None


def handle_push_envelope(service: ServiceDef, envelope: Mapping[str, Any], topic: str = "") -> Outcome:
    """Process a Pub/Sub push request body: `{"message": {...}, "subscription": ..., "deliveryAttempt": n}`.

    The raw envelope is what an HTTP function receives: it carries the delivery attempt (with a dead-letter
    policy), which the last-attempt hook needs.
    """
    message = envelope.get("message") or {}
    attempt = envelope.get("deliveryAttempt")
    sub = _push_subscription(service, str(envelope.get("subscription") or ""), topic)
    delivery = Delivery(
        data=base64.b64decode(message.get("data") or ""),
        attributes=message.get("attributes") or {},
        message_id=str(message.get("messageId") or message.get("message_id") or ""),
        delivery_attempt=int(attempt) if attempt is not None else None,
        lease_s=sub.ack_deadline_s,  # a push is answered within the subscription's ack deadline
        published_at=_timestamp(message.get("publishTime") or message.get("publish_time")),
    )
    outcome = process(service, sub, delivery)
    if outcome is Outcome.NACK:
        raise RedeliveryRequested(f"{service.name}: handler failed for message {delivery.message_id}")
    return outcome
