"""One delivery, its one outcome: `process` decodes, validates, handles and publishes a message, inside its span.

- ACK: handled (its output events published first) or an event type this consumer ignores;
- NACK: the handler failed; Pub/Sub redelivers with exponential backoff and, after the subscription's
  max delivery attempts, moves the message to its dead-letter topic (with `CloudPubSubDeadLetterSource*`
  attributes). On the last attempt the handler's `on_exhausted` hook may publish a terminal event (job.failed)
  so that the job does not hang;
- DEAD_LETTER: the message must never be processed (not a CloudEvent, unknown type or major version, schema
  violation). It is forwarded at once to the subscription's dead-letter topic with the reason in
  `speakerline-dead-letter-*` attributes, then acknowledged: no crash loop, no pointless retries, nothing lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from speakerline import logs, telemetry
from speakerline.events import Event, InvalidEvent
from speakerline.runtime.service import Context, Route, ServiceDef
from speakerline.topology import Subscription

DEAD_LETTER_ATTR = "speakerline-dead-letter-"


class Outcome(Enum):
    ACK = "ack"
    NACK = "nack"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Delivery:
    data: bytes
    attributes: Mapping[str, str]
    message_id: str
    delivery_attempt: int | None
    #: seconds the handler may take before the message can go to another worker
    lease_s: float = 600.0
    #: when Pub/Sub received the message (Unix seconds), for the queue wait on the delivery's span
    published_at: float | None = None


def _dead_letter_attributes(delivery: Delivery, sub: Subscription, error: InvalidEvent) -> dict[str, str]:
    attributes = dict(delivery.attributes)
    attributes.update(
        {
            DEAD_LETTER_ATTR + "reason": error.code,
            DEAD_LETTER_ATTR + "message": error.message[:1000],
            DEAD_LETTER_ATTR + "subscription": sub.name,
            DEAD_LETTER_ATTR + "message-id": delivery.message_id,
        }
    )
    return attributes


def _context(sub: Subscription, delivery: Delivery) -> Context:
    attempt = delivery.delivery_attempt or 1
    return Context(
        attempt=attempt,
        final_attempt=delivery.delivery_attempt is not None and attempt >= sub.max_delivery_attempts,
        deadline=time.time() + delivery.lease_s,
        message_id=delivery.message_id,
        subscription=sub.name,
    )


def _publish(service: ServiceDef, route: Route, outputs: Iterable[Event[Any]]) -> list[str]:
    """Publish a handler's events: a list at once, a generator's one by one as they are yielded."""
    if isinstance(outputs, list | tuple):
        for output in outputs:
            telemetry.note_job(output.job_id)
        service.publisher.publish(list(outputs))
        return [e.TYPE for e in outputs]
    published = []
    for output in outputs:
        telemetry.note_job(output.job_id)
        try:
            service.publisher.publish([output])
        except Exception:
            if not route.may_lose(output):
                raise
            logs.get_logger().warning("a best-effort event could not be published", event_type=output.TYPE)
            continue
        published.append(output.TYPE)
    return published


def process(service: ServiceDef, sub: Subscription, delivery: Delivery) -> Outcome:
    """Decode, validate, handle, publish, inside the delivery's span; see the module docstring for the outcomes."""
    started = time.time()
    log = logs.get_logger(subscription=sub.name, message_id=delivery.message_id, attempt=delivery.delivery_attempt)
    event: Event[Any] | None = None
    refused: InvalidEvent | None = None
    try:
        event = service.decoder(sub)(delivery.data, delivery.attributes)
    except InvalidEvent as error:
        refused = error
    with telemetry.consuming(
        subscription=sub.name,
        topic=sub.topic,
        message_id=delivery.message_id,
        # a refused message may still say which trace it belongs to
        traceparent=event.traceparent if event is not None else delivery.attributes.get("ce-traceparent"),
        published_at=delivery.published_at,
        attempt=delivery.delivery_attempt,
        started=started,
    ) as span:
        if event is None:
            assert refused is not None
            outcome = _refuse(service, sub, delivery, refused, log)
        else:
            telemetry.describe_event(span, event)
            with logs.bind_event(event):
                outcome = _run_handler(service, sub, delivery, event, log)
        telemetry.settle(span, sub.name, outcome.value, started, refused.code if refused else "")
        return outcome


def _refuse(service: ServiceDef, sub: Subscription, delivery: Delivery, error: InvalidEvent, log: Any) -> Outcome:
    log.error("message refused; forwarding to dead-letter topic", reason=error.code, detail=error.message)
    try:
        attributes = _dead_letter_attributes(delivery, sub, error)
        service.publisher.publish_raw(sub.dead_letter_topic, delivery.data, attributes)
    except Exception:
        log.exception("could not forward to dead-letter topic; Pub/Sub will redeliver")
        return Outcome.NACK
    return Outcome.DEAD_LETTER


def _run_handler(service: ServiceDef, sub: Subscription, delivery: Delivery, event: Event[Any], log: Any) -> Outcome:
    route = service.route(sub)
    if not route.takes(event):
        log.info("event type not handled here; acknowledged")
        return Outcome.ACK
    context = _context(sub, delivery)
    try:
        published = _publish(service, route, route.handler(event, context))
    except Exception as exc:
        telemetry.failed(exc)
        log.exception("handler failed", final_attempt=context.final_attempt)
        if context.final_attempt and route.on_exhausted is not None:
            try:
                _publish(service, route, route.on_exhausted(event, context, exc))
            except Exception:
                log.exception("could not publish the terminal event of an exhausted message")
        return Outcome.NACK
    log.info("event handled", published=published)
    return Outcome.ACK
