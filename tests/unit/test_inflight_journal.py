"""The pull worker's journal of messages in flight: what a crashed worker's restart resumes or hands back."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from speakerline import logs, runtime
from speakerline.runtime import pull


def _delivery(message_id: str, attempt: int | None = 1) -> runtime.Delivery:
    return runtime.Delivery(b'{"x": 1}\x00\xff', {"ce-type": "t", "ce-id": message_id}, message_id, attempt, 600.0, 1.5)


def test_finished_messages_leave_nothing_and_a_crash_leaves_what_was_in_flight(tmp_path: Path) -> None:
    journal = runtime.InflightJournal(tmp_path / "inflight")
    journal.add("projects/p/subscriptions/a", "ack-1", _delivery("m1"))
    journal.add("projects/p/subscriptions/a", "ack-2", _delivery("m2"))
    journal.add("projects/p/subscriptions/b", "ack/3+=", _delivery("m3", attempt=None))  # ack ids are opaque
    journal.remove("ack-2")  # handled and acked
    journal.remove("never-added")
    # The process dies here; its successor reads the same folder.
    successor = runtime.InflightJournal(tmp_path / "inflight")
    left = {item.ack_id: item for item in successor.take_over()}
    assert sorted(left) == ["ack-1", "ack/3+="]
    assert left["ack-1"].subscription == "projects/p/subscriptions/a"
    assert left["ack-1"].delivery == _delivery("m1")  # the message itself, bytes and all
    assert successor.take_over() == []  # taken over once
    # resumed as the next attempt (None stays None: no dead-letter policy, no count)
    assert left["ack-1"].resumption() == _delivery("m1", attempt=2)
    assert left["ack/3+="].resumption() == _delivery("m3", attempt=None)


def test_a_message_is_resumed_once_and_an_entry_without_its_message_is_only_handed_back(tmp_path: Path) -> None:
    journal = runtime.InflightJournal(tmp_path)
    journal.add("projects/p/subscriptions/a", "ack-1", _delivery("m1"), resumed=True)
    journal.add("projects/p/subscriptions/a", "ack-2")
    (tmp_path / "garbage").write_text("{not json")
    left = {item.ack_id: item for item in journal.take_over()}
    assert sorted(left) == ["ack-1", "ack-2"]  # the unreadable file is dropped (its message's lease returns it)
    assert left["ack-1"].resumption() is None  # its successor died on it too: back to Pub/Sub, which counts it
    assert left["ack-2"].resumption() is None
    assert not list(tmp_path.iterdir())


class _Subscriber:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def subscription_path(self, project: str, name: str) -> str:
        return f"projects/{project}/subscriptions/{name}"

    def modify_ack_deadline(self, request: dict[str, Any]) -> None:
        self.calls.append(("modify", request))


def test_a_started_worker_resumes_its_predecessors_message_first_and_hands_back_the_rest(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from speakerline.topology import Subscription

    journal = runtime.InflightJournal(tmp_path)
    journal.add("projects/p/subscriptions/work", "ack-1", _delivery("m1", attempt=3))
    journal.add("projects/p/subscriptions/work", "ack-2", _delivery("m2"))  # no free slot left for it
    journal.add("projects/p/subscriptions/work", "ack-3", _delivery("m3"), resumed=True)
    journal.add("projects/p/subscriptions/gone", "ack-4", _delivery("m4"))  # a subscription no longer routed here
    handled: list[tuple[str, runtime.Delivery]] = []
    done, go_on = threading.Event(), threading.Event()

    sub = Subscription.__new__(Subscription)
    object.__setattr__(sub, "name", "work")
    route = runtime.Route(lambda event, context: [], accepts=(), concurrency=1)

    class Service:
        name = "svc"

        class topology:
            @staticmethod
            def subscriptions_of(name: str) -> list[Subscription]:
                return [sub]

        @staticmethod
        def route(s: Subscription) -> runtime.Route:
            return route

    def process(service: Any, s: Subscription, delivery: runtime.Delivery) -> runtime.Outcome:
        handled.append((s.name, delivery))
        done.set()
        go_on.wait(5)  # the slot stays taken while the take-over goes on
        return runtime.Outcome.ACK

    monkeypatch.setattr(pull, "process", process)  # the worker calls it by this name
    worker = runtime.PullWorker.__new__(runtime.PullWorker)
    subscriber = _Subscriber()
    worker.__dict__.update(
        service=Service(),
        project="p",
        subscriber=subscriber,
        journal=journal,
        log=logs.get_logger(),
        _slots={"work": threading.Semaphore(1)},
        _running=set(),
        _running_lock=threading.Lock(),
        _acks={},
        _acks_ready=threading.Condition(),
    )
    worker.leases = runtime.Leases(subscriber, worker.log)
    worker._take_over_predecessors_messages()
    assert done.wait(5)
    go_on.set()
    [(name, delivery)] = handled
    assert name == "work" and delivery.message_id in {"m1", "m2"}
    resumed = delivery.message_id
    handed_back = {
        ack_id
        for kind, request in subscriber.calls
        if request["ack_deadline_seconds"] == 0
        for ack_id in request["ack_ids"]
    }
    assert handed_back == {"ack-1", "ack-2", "ack-3", "ack-4"} - {"ack-1" if resumed == "m1" else "ack-2"}
    if resumed == "m1":
        assert delivery.delivery_attempt == 4  # the next attempt
    # the resumed message is leased again and then acknowledged with the next batch
    assert any(r["ack_deadline_seconds"] == runtime.LEASE_EXTENSION_S for _, r in subscriber.calls)
    for _ in range(50):
        if worker._acks:
            break
        threading.Event().wait(0.02)
    assert worker._acks == {"projects/p/subscriptions/work": ["ack-1" if resumed == "m1" else "ack-2"]}
