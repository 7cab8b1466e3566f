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

Handlers see typed events (`speakerline.events`) and a `Context`; whatever they return is published here.
`run_pull` runs a service as a pull worker (GPU hosts without ingress); `handle_push_envelope` serves
the push HTTP function behind a Pub/Sub push subscription (Cloud Run); see `speakerline.bootstrap`.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import google.api_core.exceptions as gexc
import google.cloud.pubsub_v1 as pubsub_v1

from speakerline import events, logs, telemetry
from speakerline.events import Event, InvalidEvent
from speakerline.pubsub import EventPublisher
from speakerline.topology import Subscription, Topology

DEAD_LETTER_ATTR = "speakerline-dead-letter-"
# Seconds each lease extension of a message in flight asks for, and how often they are renewed (see `Leases`): a
# worker that dies without a word gives its messages back within LEASE_EXTENSION_S.
LEASE_EXTENSION_S = 30
LEASE_RENEW_S = 10.0
# How long one pull waits for messages; also the longest `stop` waits for a pull to return.
PULL_WAIT_S = 5.0


@dataclass(frozen=True)
class Context:
    """What a handler knows about the delivery it is handling, besides the event itself."""

    #: 1 for the first delivery; Pub/Sub counts attempts only on subscriptions with a dead-letter policy (all of
    #: speakerline's), and 1 is assumed where it does not say
    attempt: int
    #: whether this is the subscription's last attempt before the message is dead-lettered
    final_attempt: bool
    #: time.time() by which the handler should be done: past it the message may be redelivered elsewhere
    deadline: float
    message_id: str = ""
    subscription: str = ""


# A handler gets the event, its context and (bound with functools.partial) its deps, and returns every event it
# emits. A list is published when the handler returns; a generator's events are published as it yields them,
# which is how an event goes out before the long part of the work (diarization.started, progress).
Handler = Callable[[Any, Context], Iterable[Event[Any]]]
# Called on the last attempt of a message whose handler failed: the terminal event (job.failed), so that the job
# does not hang while the message waits in the dead-letter topic.
ExhaustedHook = Callable[[Any, Context, BaseException], Iterable[Event[Any]]]
Decoder = Callable[[bytes, Mapping[str, str]], Event[Any]]


class Outcome(Enum):
    ACK = "ack"
    NACK = "nack"
    DEAD_LETTER = "dead_letter"


class RedeliveryRequested(Exception):
    """Raised from a push entry point so that Pub/Sub redelivers."""


@dataclass(frozen=True)
class Route:
    handler: Handler
    #: the event classes this handler takes; others arriving on its subscription are acknowledged and ignored
    accepts: tuple[type[Event[Any]], ...]
    on_exhausted: ExhaustedHook | None = None
    concurrency: int = 4
    max_lease_s: int = 3600
    #: event classes published best effort: a failed publish is logged and the handler goes on (a lost progress
    #: report must not throw away, and redo, hours of diarization); every other event's failure fails the delivery
    best_effort: tuple[type[Event[Any]], ...] = ()

    def takes(self, event: Event[Any]) -> bool:
        return any(event.TYPE == cls.TYPE for cls in self.accepts)

    def may_lose(self, event: Event[Any]) -> bool:
        return any(event.TYPE == cls.TYPE for cls in self.best_effort)


@dataclass
class ServiceDef:
    """A service as the runtime sees it: its name, its routes by handler name, its payload decoders."""

    name: str
    routes: Mapping[str, Route]
    publisher: EventPublisher
    topology: Topology
    decoders: Mapping[str, Decoder] = field(default_factory=dict)
    #: run once before taking work (e.g. load a model, so that a broken setup shows at start)
    warm_up: Callable[[], None] | None = None

    def decoder(self, sub: Subscription) -> Decoder:
        decoder: Decoder = events.parse_pubsub if sub.payload == "cloudevent" else self.decoders[sub.payload]
        return decoder

    def route(self, sub: Subscription) -> Route:
        return self.routes[sub.handler]


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


# --- pull -------------------------------------------------------------------------------------------------


class InflightJournal:
    """The messages this worker is handling, one small file each in `folder` (ack id, subscription and the message
    itself), so that a worker restarted after a crash (SIGKILL, OOM: no nack) resumes its predecessor's messages
    first, instead of leaving them leased until their ack deadline runs out and then queued behind whatever arrived
    meanwhile (a job that was running should not go to the back of the queue). Ack ids stay valid across
    connections (the client acknowledges through unary calls anyway), so the new process can extend and acknowledge
    them itself. A message is resumed once: if the successor dies on it too, the next one hands it back to Pub/Sub
    (which counts the attempt and dead-letters a message that keeps killing workers). Only worth it where the
    folder survives the crash: a VM's disk, the local stack; on Cloud Run it is left unset."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _file(self, ack_id: str) -> Path:
        import hashlib

        return self.folder / hashlib.sha256(ack_id.encode()).hexdigest()[:32]

    def add(self, subscription: str, ack_id: str, delivery: Delivery | None = None, resumed: bool = False) -> None:
        import json

        entry: dict[str, Any] = {"subscription": subscription, "ack_id": ack_id, "resumed": resumed}
        if delivery is not None:
            entry["delivery"] = {
                "data": base64.b64encode(delivery.data).decode(),
                "attributes": dict(delivery.attributes),
                "message_id": delivery.message_id,
                "delivery_attempt": delivery.delivery_attempt,
                "lease_s": delivery.lease_s,
                "published_at": delivery.published_at,
            }
        self._file(ack_id).write_text(json.dumps(entry))

    def remove(self, ack_id: str) -> None:
        self._file(ack_id).unlink(missing_ok=True)

    def take_over(self) -> list[Inflight]:
        """What a crashed predecessor left (the files are removed)."""
        import json

        left: list[Inflight] = []
        for file in self.folder.iterdir():
            with suppress(OSError, ValueError, KeyError, TypeError):
                entry = json.loads(file.read_text())
                saved = entry.get("delivery")
                delivery = None
                if saved is not None:
                    delivery = Delivery(
                        base64.b64decode(saved["data"]),
                        {str(k): str(v) for k, v in saved["attributes"].items()},
                        str(saved["message_id"]),
                        saved["delivery_attempt"],
                        float(saved["lease_s"]),
                        saved["published_at"],
                    )
                left.append(Inflight(entry["subscription"], entry["ack_id"], delivery, bool(entry.get("resumed"))))
            file.unlink(missing_ok=True)
        return left


@dataclass(frozen=True)
class Inflight:
    """A message a crashed worker was handling (`InflightJournal`)."""

    subscription: str  # path
    ack_id: str
    delivery: Delivery | None  # None: not saved (or not readable): it can only be handed back
    resumed: bool  # its handler was already a successor's, which died too

    def resumption(self) -> Delivery | None:
        """The delivery to resume, counted as the next attempt; None when it must go back to Pub/Sub instead."""
        if self.delivery is None or self.resumed:
            return None
        attempt = self.delivery.delivery_attempt
        return dataclasses.replace(self.delivery, delivery_attempt=attempt + 1 if attempt else None)


class Leases:
    """The messages a worker is handling, kept leased in short steps.

    Every `LEASE_RENEW_S` each held message gets another `LEASE_EXTENSION_S`, until its route's `max_lease_s`. A
    long diarization job therefore stays with its worker, while the message of a worker that died (no nack, no more
    extensions) is back on the subscription within `LEASE_EXTENSION_S`. Renewing at a third of the extension leaves
    two thirds of it as slack for a loaded machine: the streaming client renews at up to 90 % of its deadline, and
    with 10 s steps on a busy 2-core host leases lapsed and jobs ran twice."""

    def __init__(self, subscriber: Any, log: Any, lease_s: int = LEASE_EXTENSION_S) -> None:
        self._subscriber = subscriber
        self._log = log
        self.lease_s = lease_s
        self._lock = threading.Lock()
        self._held: dict[str, tuple[str, float]] = {}  # ack id -> (subscription path, stop extending at)

    def hold(self, path: str, ack_ids: list[str], max_lease_s: float) -> None:
        until = time.monotonic() + max_lease_s
        with self._lock:
            self._held.update({ack_id: (path, until) for ack_id in ack_ids})
        self._modify(path, ack_ids, self.lease_s)  # from the subscription's (long) ack deadline to a short one

    def release(self, ack_id: str) -> None:
        with self._lock:
            self._held.pop(ack_id, None)

    def held(self) -> dict[str, list[str]]:
        by_path: dict[str, list[str]] = {}
        with self._lock:
            for ack_id, (path, _) in self._held.items():
                by_path.setdefault(path, []).append(ack_id)
        return by_path

    def renew(self) -> None:
        now = time.monotonic()
        with self._lock:
            expired = [ack_id for ack_id, (_, until) in self._held.items() if until <= now]
            for ack_id in expired:  # past max_lease_s: Pub/Sub may hand the message to another worker
                del self._held[ack_id]
        if expired:
            self._log.warning("stopped extending messages held past their route's max lease", count=len(expired))
        for path, ack_ids in self.held().items():
            self._modify(path, ack_ids, self.lease_s)

    def _modify(self, path: str, ack_ids: list[str], seconds: int) -> None:
        try:
            self._subscriber.modify_ack_deadline(
                request={"subscription": path, "ack_ids": ack_ids, "ack_deadline_seconds": seconds}
            )
        except Exception:  # Pub/Sub away: the next renewal tries again; a lapsed lease means a redelivery
            self._log.exception("could not extend leases", subscription=path, count=len(ack_ids))


class PullWorker:
    """Pulls every subscription of a service with unary pulls, at most its route's concurrency at a time.

    Why not streaming pull: a streaming client takes more messages than it can run and holds them in a buffer,
    which suits many small messages but not a worker that runs one hour-long job at a time (Pub/Sub's guidance
    for long-running tasks is synchronous pull). A unary pull asks for exactly the free slots, so nothing waits
    behind a long job on this worker while another could take it, and a worker that dies holds only what it was
    running, returned within `LEASE_EXTENSION_S` (or resumed at once by its restarted successor: `InflightJournal`).
    `stop` stops pulling, lets the handlers in flight finish for a while, then hands the rest back.

    Acknowledgements are sent in batches, one request per subscription every `ACK_BATCH_S`, by a thread of their
    own: the handler's slot is free as soon as its outcome is known, and a busy subscription costs one ack request
    per batch rather than one per message. A lost ack (the worker dies within `ACK_BATCH_S`) is a redelivery, which
    every handler tolerates; nacks still go at once."""

    #: how long handled messages gather before their acknowledgements go out, and the most ack ids per request
    ACK_BATCH_S = 0.05
    ACK_BATCH_MAX = 500

    def __init__(
        self,
        service: ServiceDef,
        project: str,
        journal: InflightJournal | None = None,
        lease_s: int = LEASE_EXTENSION_S,
        renew_s: float = LEASE_RENEW_S,
    ) -> None:
        self.service = service
        self.project = project
        self.subscriber = pubsub_v1.SubscriberClient()
        self.log = logs.get_logger()
        self.journal = journal
        self.leases = Leases(self.subscriber, self.log, lease_s)
        self.renew_s = renew_s
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: set[threading.Thread] = set()
        self._running_lock = threading.Lock()
        self._acks: dict[str, list[str]] = {}  # subscription path -> ack ids handled, not yet acknowledged
        self._acks_ready = threading.Condition()
        self._slots: dict[str, threading.Semaphore] = {}  # subscription name -> its route's free handler slots

    def _take_over_predecessors_messages(self) -> None:
        """Resume what a crashed predecessor was handling, before pulling anything new (`InflightJournal`)."""
        if self.journal is None:
            return
        subs = {self.subscriber.subscription_path(self.project, s.name): s for s in self._subscriptions()}
        handed_back: dict[str, list[str]] = {}
        for item in self.journal.take_over():
            sub, delivery = subs.get(item.subscription), item.resumption()
            if sub is None or delivery is None or not self._slots[sub.name].acquire(blocking=False):
                handed_back.setdefault(item.subscription, []).append(item.ack_id)
                continue
            self.log.warning(
                "resuming a message a crashed worker held", subscription=sub.name, message_id=delivery.message_id
            )
            self.journal.add(item.subscription, item.ack_id, delivery, resumed=True)
            self.leases.hold(item.subscription, [item.ack_id], self.service.route(sub).max_lease_s)
            self._start_handler(sub, item.subscription, item.ack_id, delivery)
        for path, ack_ids in handed_back.items():
            try:
                # ack deadline 0 = nack: Pub/Sub redelivers at once (to this worker, or any other)
                self.subscriber.modify_ack_deadline(
                    request={"subscription": path, "ack_ids": ack_ids, "ack_deadline_seconds": 0}
                )
                self.log.warning("returned the messages a crashed worker held", subscription=path, count=len(ack_ids))
            except Exception:  # expired ack ids, or Pub/Sub away: their deadline returns them anyway
                self.log.exception("could not return a crashed worker's messages", subscription=path)

    def _subscriptions(self) -> list[Subscription]:
        return list(self.service.topology.subscriptions_of(self.service.name))

    def start(self) -> None:
        for sub in self._subscriptions():
            self._slots[sub.name] = threading.Semaphore(self.service.route(sub).concurrency)
        self._take_over_predecessors_messages()
        for sub in self._subscriptions():
            route = self.service.route(sub)
            thread = threading.Thread(target=self._pull_loop, args=(sub,), name=f"pull-{sub.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
            self.log.info("pulling", subscription=sub.name, concurrency=route.concurrency)
        for name, target in (("lease-renewal", self._renew_loop), ("ack-batches", self._ack_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _renew_loop(self) -> None:
        while not self._closed.wait(self.renew_s):  # on until `stop` has settled everything
            self.leases.renew()

    def _pull_loop(self, sub: Subscription) -> None:
        route = self.service.route(sub)
        path = self.subscriber.subscription_path(self.project, sub.name)
        slots = self._slots[sub.name]
        backoff_s = 1.0
        while not self._stopping.is_set():
            if not slots.acquire(timeout=1.0):
                continue
            free = 1
            while free < route.concurrency and slots.acquire(blocking=False):
                free += 1
            received: list[Any] = []
            try:
                response = self.subscriber.pull(
                    request={"subscription": path, "max_messages": free}, timeout=PULL_WAIT_S, retry=None
                )
                received = list(response.received_messages)
                backoff_s = 1.0
            except gexc.DeadlineExceeded:
                pass  # nothing arrived while waiting
            except Exception:  # Pub/Sub away: keep trying, slower, instead of exiting into a crash loop
                self.log.exception("pull failed; retrying", subscription=sub.name, retry_in_s=backoff_s)
                self._stopping.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 30.0)
            for _ in range(free - len(received)):
                slots.release()
            if not received:
                continue
            deliveries = [(m.ack_id, _delivery_of(m, route)) for m in received]
            for ack_id, delivery in deliveries:
                if self.journal is not None:
                    self.journal.add(path, ack_id, delivery)
            self.leases.hold(path, [ack_id for ack_id, _ in deliveries], route.max_lease_s)
            for ack_id, delivery in deliveries:
                self._start_handler(sub, path, ack_id, delivery)

    def _start_handler(self, sub: Subscription, path: str, ack_id: str, delivery: Delivery) -> None:
        """Handle one delivery on a thread of its own; its slot is taken already and freed when it is settled."""
        thread = threading.Thread(
            target=self._handle, args=(sub, path, ack_id, delivery), name=f"handle-{sub.name}", daemon=True
        )
        with self._running_lock:
            self._running.add(thread)
        thread.start()

    def _handle(self, sub: Subscription, path: str, ack_id: str, delivery: Delivery) -> None:
        outcome = Outcome.NACK
        try:
            outcome = process(self.service, sub, delivery)
        finally:
            self._settle(path, ack_id, outcome)
            self._slots[sub.name].release()
            with self._running_lock:
                self._running.discard(threading.current_thread())

    def _settle(self, path: str, ack_id: str, outcome: Outcome) -> None:
        self.leases.release(ack_id)
        if outcome is not Outcome.NACK:
            with self._acks_ready:  # acknowledged with the next batch (`_ack_loop`)
                self._acks.setdefault(path, []).append(ack_id)
                self._acks_ready.notify()
            return
        try:
            self.subscriber.modify_ack_deadline(
                request={"subscription": path, "ack_ids": [ack_id], "ack_deadline_seconds": 0}
            )
        except Exception:  # the message comes back after its lease; handlers are idempotent
            self.log.exception("could not settle a message", subscription=path, outcome=outcome.value)
        if self.journal is not None:
            self.journal.remove(ack_id)

    def _ack_loop(self) -> None:
        while not self._closed.is_set():  # on until `stop` has acknowledged what its handlers finished
            with self._acks_ready:
                if not self._acks:
                    self._acks_ready.wait(timeout=1.0)
            if self._acks:
                self._closed.wait(self.ACK_BATCH_S)  # let the batch gather
                self._send_acks()

    def _send_acks(self) -> None:
        with self._acks_ready:
            batches, self._acks = self._acks, {}
        for path, ack_ids in batches.items():
            for start in range(0, len(ack_ids), self.ACK_BATCH_MAX):
                chunk = ack_ids[start : start + self.ACK_BATCH_MAX]
                try:
                    self.subscriber.acknowledge(request={"subscription": path, "ack_ids": chunk})
                except Exception:  # they come back after their lease; handlers are idempotent
                    self.log.exception("could not settle messages", subscription=path, outcome="ack", count=len(chunk))
                if self.journal is not None:
                    for ack_id in chunk:
                        self.journal.remove(ack_id)

    def failed(self) -> bool:
        return not self._stopping.is_set() and any(not t.is_alive() for t in self._threads)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop pulling; give the handlers in flight `timeout_s` to finish, then hand their messages back."""
        self._stopping.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            if thread.name.startswith("pull-"):
                thread.join(timeout=PULL_WAIT_S + 5)
        with self._running_lock:
            running = list(self._running)
        for thread in running:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._send_acks()
        for path, ack_ids in self.leases.held().items():
            self.log.warning("handing back messages still in flight at shutdown", subscription=path, count=len(ack_ids))
            with suppress(Exception):
                self.subscriber.modify_ack_deadline(
                    request={"subscription": path, "ack_ids": ack_ids, "ack_deadline_seconds": 0}
                )
            for ack_id in ack_ids:
                self.leases.release(ack_id)
                if self.journal is not None:
                    self.journal.remove(ack_id)
        self._closed.set()
        with self._acks_ready:
            self._acks_ready.notify_all()
        for thread in self._threads:
            if thread.name == "ack-batches":
                thread.join(timeout=PULL_WAIT_S)
        self._send_acks()  # what a handler finished meanwhile
        self.subscriber.close()


def _delivery_of(received: Any, route: Route) -> Delivery:
    message = received.message
    return Delivery(
        message.data,
        dict(message.attributes),
        message.message_id,
        received.delivery_attempt or None,  # 0 where the subscription has no dead-letter policy
        route.max_lease_s,
        message.publish_time.timestamp() if message.publish_time else None,
    )


def run_pull(
    service: ServiceDef, project: str, ready_file: Path | None = None, inflight_dir: Path | None = None
) -> None:
    """Run a service as a pull worker until SIGTERM/SIGINT."""
    worker = PullWorker(service, project, InflightJournal(inflight_dir) if inflight_dir else None)
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
        worker.log.error("a pull thread stopped unexpectedly; exiting so the supervisor restarts the worker")
    worker.log.info("shutting down")
    worker.stop()
    telemetry.shutdown()


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


def _timestamp(value: Any) -> float | None:
    """Unix seconds of an RFC 3339 time (a push envelope's publishTime), None when absent or unreadable."""
    from datetime import datetime

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
