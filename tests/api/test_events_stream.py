"""api.events_stream.job_events over a store whose listener replays a scripted list of documents."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from api.events_stream import job_events, parse_last_event_id
from projector.projection import project
from tests.fakes import MemoryApiStore
from tests.projector.jobevents import HAPPY, make

JOB = "job_0123456789abcdef01234567"
CLAIM = {"producer": "newsroom", "file_name": "standup.mp3", "created_at": datetime(2026, 11, 20, 9, 29, tzinfo=UTC)}


def _versions() -> list[dict[str, Any]]:
    """The job document after each event of a normal job: versions 1..5, the last COMPLETED."""
    docs: list[dict[str, Any]] = []
    doc: dict[str, Any] | None = None
    for name in HAPPY:
        doc = project(doc, make(name, JOB))
        docs.append(doc)
    return docs


def _collect(
    script: list[dict[str, Any] | None], last_seen: int | None, claim: Any = CLAIM, max_s: float = 5.0
) -> tuple[list[dict[str, str]], MemoryApiStore]:
    store = MemoryApiStore()
    store.watch_script[JOB] = script

    async def run() -> list[dict[str, str]]:
        return [item async for item in job_events(JOB, claim, last_seen, store, max_s)]

    items = asyncio.run(run())
    return items, store


def _summary(items: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(item["id"], json.loads(item["data"])["status"]) for item in items]


def test_from_the_start_pending_then_every_version_to_completed() -> None:
    versions = _versions()
    assert [v["event_count"] for v in versions] == [1, 2, 3, 4, 5]

    items, store = _collect([None, *versions], None)

    assert _summary(items) == [
        ("0", "PENDING"),
        ("1", "RECEIVED"),
        ("2", "INGESTED"),
        ("3", "DIARIZING"),
        ("4", "DIARIZED"),
        ("5", "COMPLETED"),
    ]
    assert all(item["event"] == "job" for item in items)
    pending = json.loads(items[0]["data"])
    assert pending["file_name"] == "standup.mp3" and pending["request"] == {"producer": "newsroom"}
    assert "segments" not in json.loads(items[-1]["data"])
    assert store.unsubscribed == 1


def test_no_pending_without_a_claim() -> None:
    items, _ = _collect([None, *_versions()], None, claim=None)
    assert [i for i, _ in _summary(items)] == ["1", "2", "3", "4", "5"]


def test_pending_is_sent_once() -> None:
    items, _ = _collect([None, None, None, *_versions()], None)
    assert [i for i, _ in _summary(items)] == ["0", "1", "2", "3", "4", "5"]


def test_last_event_id_sends_only_later_versions() -> None:
    items, store = _collect([None, *_versions()], 2)
    assert _summary(items) == [("3", "DIARIZING"), ("4", "DIARIZED"), ("5", "COMPLETED")]
    assert store.unsubscribed == 1


def test_last_event_id_zero_skips_pending() -> None:
    items, _ = _collect([None, *_versions()], 0)
    assert [i for i, _ in _summary(items)] == ["1", "2", "3", "4", "5"]


def test_a_listener_starting_late_sends_the_current_version_only() -> None:
    versions = _versions()
    items, _ = _collect([versions[3], versions[4]], None)
    assert _summary(items) == [("4", "DIARIZED"), ("5", "COMPLETED")]


def test_last_event_id_of_the_terminal_version_ends_with_nothing() -> None:
    versions = _versions()
    items, store = _collect([versions[-1]], 5)
    assert items == []
    assert store.unsubscribed == 1


def test_repeated_snapshots_of_a_version_are_sent_once() -> None:
    v = _versions()
    items, _ = _collect([v[0], v[0], v[1], v[1], v[1], v[0], v[2], v[3], v[3], v[4], v[4]], None)
    assert [i for i, _ in _summary(items)] == ["1", "2", "3", "4", "5"]
    ids = [int(item["id"]) for item in items]
    assert ids == sorted(set(ids))  # strictly increasing


def test_the_stream_ends_at_the_terminal_state() -> None:
    v = _versions()
    later = {**v[-1], "event_count": 6}  # e.g. a notification after completion
    items, _ = _collect([*v, later], None)
    assert items[-1]["id"] == "5"


def test_the_stream_ends_at_its_deadline_and_unsubscribes() -> None:
    v = _versions()
    items, store = _collect([None, v[0], v[1]], None, max_s=0.2)  # never terminal: the deadline ends it
    assert [i for i, _ in _summary(items)] == ["0", "1", "2"]
    assert store.unsubscribed == 1


@pytest.mark.parametrize(
    ("header", "seen"), [(None, None), ("7", 7), (" 12 ", 12), ("0", 0), ("-1", None), ("abc", None), ("", None)]
)
def test_parse_last_event_id(header: str | None, seen: int | None) -> None:
    assert parse_last_event_id(header) == seen
