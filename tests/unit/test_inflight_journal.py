"""The pull worker's journal of messages in flight: what a crashed worker's restart hands back to Pub/Sub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speakerline import runtime


def test_finished_messages_leave_nothing_and_a_crash_leaves_what_was_in_flight(tmp_path: Path) -> None:
    journal = runtime.InflightJournal(tmp_path / "inflight")
    journal.add("projects/p/subscriptions/a", "ack-1")
    journal.add("projects/p/subscriptions/a", "ack-2")
    journal.add("projects/p/subscriptions/b", "ack/3+=")  # ack ids are opaque strings
    journal.remove("ack-2")  # handled and acked
    journal.remove("never-added")
    # The process dies here; its successor reads the same folder.
    successor = runtime.InflightJournal(tmp_path / "inflight")
    left = successor.take_over()
    assert {k: sorted(v) for k, v in left.items()} == {
        "projects/p/subscriptions/a": ["ack-1"],
        "projects/p/subscriptions/b": ["ack/3+="],
    }
    assert successor.take_over() == {}  # handed back once


def test_a_started_worker_nacks_its_predecessors_messages(tmp_path: Path, monkeypatch: Any) -> None:
    journal = runtime.InflightJournal(tmp_path)
    journal.add("projects/p/subscriptions/a", "ack-1")
    calls: list[dict[str, Any]] = []

    class Subscriber:
        def modify_ack_deadline(self, request: dict[str, Any]) -> None:
            calls.append(request)

    worker = runtime.PullWorker.__new__(runtime.PullWorker)
    worker.subscriber = Subscriber()  # type: ignore[assignment]
    worker.journal = journal
    worker.log = runtime.logs.get_logger()
    worker._return_predecessors_messages()
    assert calls == [{"subscription": "projects/p/subscriptions/a", "ack_ids": ["ack-1"], "ack_deadline_seconds": 0}]
