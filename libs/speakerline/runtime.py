"""The one place where Pub/Sub messages meet handlers, for both delivery styles.

A service is a table of handlers (`ServiceDef`); `infra/topology.yaml` says which subscription feeds which
handler. For every message, `process` decides one of three outcomes:

- ACK: handled (its output events published first) or an event type this consumer ignores;
- NACK: the handler failed; Pub/Sub redelivers with exponential backoff and, after the subscription's
  max delivery attempts, moves the message to its dead-letter topic (with `CloudPubSubDeadLetterSource*`
  attributes). On the last attempt the handler's `on_exhausted` hook may publish a terminal event (job.failed)
  so that the job does not hang;
- DEAD_LETTER: the message must never be processed (not a CloudEvent, unknown type or major version, schema
  violation). It is forwarded at once to the subscription's dead-letter topic with the reason in
  `speakerline-dead-letter-*` attributes, then acknowledged: no crash loop, no pointless retries, nothing lost.

`run_pull` runs a service as a streaming-pull worker (GPU hosts without ingress); `handle_push` is called by a
functions-framework CloudEvent function behind a push subscription or an Eventarc trigger (Cloud Run).
"""

from __future__ import annotations

import base64
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

from speakerline import logs
from speakerline.events import CloudEvent, InvalidEvent, from_pubsub
from speakerline.pubsub import EventPublisher
from speakerline.topology import Subscription, Topology

Handler = Callable[[CloudEvent], Sequence[CloudEvent]]
ExhaustedHook = Callable[[CloudEvent, BaseException], Sequence[CloudEvent]]
Decoder = Callable[[bytes, Mapping[str, str]], CloudEvent]

DEAD_LETTER_ATTR = "speakerline-dead-letter-"

# Delivery attempt of the message being handled (None when the subscription has no dead-letter policy or the
# push format does not carry it). Handlers that report attempts read it through `delivery_attempt()`.
_attempt: ContextVar[int | None] = ContextVar("speakerline_delivery_attempt", default=None)


def delivery_attempt() -> int | None:
    return _attempt.get()


class Outcome(Enum):
    ACK = "ack"
    NACK = "nack"
    DEAD_LETTER = "dead_letter"


class RedeliveryRequested(Exception):
    """Raised from a push entry point so that Pub/Sub redelivers (a CloudEvent function's return is ignored)."""


@dataclass(frozen=True)
class Route:
    handler: Handler
    accepts: frozenset[str]
    on_exhausted: ExhaustedHook | None = None
    concurrency: int = 4
    max_lease_s: int = 3600


@dataclass
class ServiceDef:
    """A service as the runtime sees it: its name, its routes by handler name, its payload decoders."""

    name: str
    routes: Mapping[str, Route]
    publisher: EventPublisher
    topology: Topology
    decoders: Mapping[str, Decoder] = field(default_factory=dict)

    def decoder(self, sub: Subscription) -> Decoder:
        decoder: Decoder = from_pubsub if sub.payload == "cloudevent" else self.decoders[sub.payload]
        return decoder

    def route(self, sub: Subscription) -> Route:
        return self.routes[sub.handler]


@dataclass(frozen=True)
class Delivery:
    data: bytes
    attributes: Mapping[str, str]
    message_id: str
    delivery_attempt: int | None


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


def process(service: ServiceDef, sub: Subscription, delivery: Delivery) -> Outcome:
    """Decode, validate, handle, publish; see the module docstring for the outcomes."""
    log = logs.get_logger(subscription=sub.name, message_id=delivery.message_id, attempt=delivery.delivery_attempt)
    try:
        event = service.decoder(sub)(delivery.data, delivery.attributes)
    except InvalidEvent as error:
        log.error("message refused; forwarding to dead-letter topic", reason=error.code, detail=error.message)
        try:
            service.publisher.publish_raw(
                sub.dead_letter_topic, delivery.data, _dead_letter_attributes(delivery, sub, error)
            )
        except Exception:
            log.exception("could not forward to dead-letter topic; Pub/Sub will redeliver")
            return Outcome.NACK
        return Outcome.DEAD_LETTER

    route = service.route(sub)
    with logs.bind_event(event):
        if event["type"] not in route.accepts:
            log.info("event type not handled here; acknowledged")
            return Outcome.ACK
        token = _attempt.set(delivery.delivery_attempt)
        try:
            outputs = route.handler(event)
            service.publisher.publish(outputs)
        except Exception as exc:
            final = delivery.delivery_attempt is not None and delivery.delivery_attempt >= sub.max_delivery_attempts
            log.exception("handler failed", final_attempt=final)
            if final and route.on_exhausted is not None:
                try:
                    service.publisher.publish(route.on_exhausted(event, exc))
                except Exception:
                    log.exception("could not publish the terminal event of an exhausted message")
            return Outcome.NACK
        finally:
            _attempt.reset(token)
        log.info("event handled", published=[e["type"] for e in outputs])
        return Outcome.ACK


# --- streaming pull -------------------------------------------------------------------------------------------


class PullWorker:
    """Streaming pull from every subscription of a service; `stop` drains the messages in flight."""

    def __init__(self, service: ServiceDef, project: str) -> None:
        self.service = service
        self.project = project
        self.subscriber = pubsub_v1.SubscriberClient()
        self.futures: list[Any] = []
        self.log = logs.get_logger()

    def start(self) -> None:
        for sub in self.service.topology.subscriptions_of(self.service.name):
            route = self.service.route(sub)
            # The client keeps extending the lease of messages in flight up to max_lease_duration: that is what
            # keeps a long diarization job from being redelivered to another worker while it still runs.
            flow = pubsub_v1.types.FlowControl(max_messages=route.concurrency, max_lease_duration=route.max_lease_s)
            scheduler = ThreadScheduler(ThreadPoolExecutor(max_workers=route.concurrency))
            path = self.subscriber.subscription_path(self.project, sub.name)
            callback = partial(self._on_message, sub)
            self.futures.append(self.subscriber.subscribe(path, callback, flow_control=flow, scheduler=scheduler))
            self.log.info("pulling", subscription=sub.name, concurrency=route.concurrency)

    def _on_message(self, sub: Subscription, message: Any) -> None:
        delivery = Delivery(message.data, dict(message.attributes), message.message_id, message.delivery_attempt)
        if process(self.service, sub, delivery) is Outcome.NACK:
            message.nack()
        else:
            message.ack()

    def failed(self) -> bool:
        return any(f.done() for f in self.futures)

    def stop(self, timeout_s: float = 30.0) -> None:
        for f in self.futures:
            f.cancel()  # stops pulling; the scheduler finishes messages in flight
            with suppress(Exception):  # a cancelled future raises; nothing to do on the way out
                f.result(timeout=timeout_s)
        self.subscriber.close()


def run_pull(service: ServiceDef, project: str, ready_file: Path | None = None) -> None:
    """Run a service as a streaming-pull worker until SIGTERM/SIGINT."""
    worker = PullWorker(service, project)
    worker.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if ready_file is not None:
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        ready_file.write_text(str(os.getpid()))
    while not stop.is_set() and not worker.failed():
        stop.wait(1.0)
    if worker.failed():
        worker.log.error("streaming pull stopped unexpectedly; exiting so the supervisor restarts the worker")
    worker.log.info("shutting down")
    worker.stop()


# --- push (functions-framework) ------------------------------------------------------------------------------


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
    )
    outcome = process(service, sub, delivery)
    if outcome is Outcome.NACK:
        raise RedeliveryRequested(f"{service.name}: handler failed for message {delivery.message_id}")
    return outcome


def handle_push(service: ServiceDef, cloud_event: Any) -> Outcome:
    """Body of a functions-framework CloudEvent function receiving Pub/Sub messages (Eventarc, or a push
    subscription whose endpoint path names the topic). functions-framework's conversion of a raw push drops
    `subscription` and `deliveryAttempt`: prefer the HTTP entry point for push subscriptions."""
    return handle_push_envelope(service, cloud_event.data or {}, str(cloud_event["source"]))
