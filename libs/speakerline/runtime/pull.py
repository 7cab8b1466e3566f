"""A service as a pull worker: unary pulls up to each route's concurrency, acknowledgements in batches, until
SIGTERM/SIGINT (GPU hosts without ingress, the local stack)."""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import google.api_core.exceptions as gexc
import google.cloud.pubsub_v1 as pubsub_v1

from speakerline import logs, telemetry
from speakerline.runtime.journal import InflightJournal
from speakerline.runtime.leases import LEASE_EXTENSION_S, LEASE_RENEW_S, Leases
from speakerline.runtime.outcomes import Delivery, Outcome, process
from speakerline.runtime.service import Route, ServiceDef
from speakerline.topology import Subscription

# How long one pull waits for messages; also the longest `stop` waits for a pull to return.
PULL_WAIT_S = 5.0


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
