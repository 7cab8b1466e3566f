"""The projector's protobuf writes are the client library's, byte for byte (no emulator needed: nothing is sent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.base_batch import BaseBatch
from google.cloud.firestore_v1.field_path import FieldPath

from projector import writes
from projector.store import changes, event_record

from .jobevents import fold, full_job

AT = datetime(2026, 11, 20, 9, 30, 1, 123456, tzinfo=UTC)
ODD: dict[str, Any] = {
    "none": None,
    "flags": [True, False],
    "int": 7,
    "big": 2**62,
    "negative": -3,
    "float": 0.1,
    "zero_float": 0.0,
    "text": "naïve ☃",
    "empty_text": "",
    "empty_map": {},
    "empty_list": [],
    "nested": {"a": [{"b": {"c": [1, 2.5, None]}}], "tuple": (1, "x")},
    "aware": AT.astimezone(timezone(timedelta(hours=-5))),
    "naive": datetime(2026, 1, 1, 12, 0),
    "nanos": DatetimeWithNanoseconds(2026, 11, 20, 9, 30, 1, nanosecond=123456789, tzinfo=UTC),
    "odd.key": 1,
    "`quoted`": 2,
}


@pytest.fixture(scope="module")
def client() -> firestore.Client:
    import os

    os.environ.setdefault("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")  # never contacted: batches are only built
    return firestore.Client(project="p")


def written(batch: BaseBatch) -> list[bytes]:
    return [w._pb.SerializeToString(deterministic=True) for w in batch._write_pbs]


def library_create(ref: Any, data: dict[str, Any]) -> list[bytes]:
    return [w._pb.SerializeToString(deterministic=True) for w in _helpers.pbs_for_create(ref._document_path, data)]


def library_update(ref: Any, before: dict[str, Any], after: dict[str, Any], at: datetime) -> list[bytes]:
    """The library's `update(ref, updates, option=write_option(...))` of the same changes: `update` reads its keys as
    field paths, hence the quoting."""
    fields, deleted = changes(before, after)
    updates: dict[str, Any] = {FieldPath(key).to_api_repr(): value for key, value in fields.items()}
    updates.update({FieldPath(key).to_api_repr(): firestore.DELETE_FIELD for key in deleted})
    option = firestore.Client.write_option(last_update_time=at)
    pbs = _helpers.pbs_for_update(ref._document_path, updates, option)
    return [w._pb.SerializeToString(deterministic=True) for w in pbs]


def test_creates_are_the_librarys(client: firestore.Client) -> None:
    job = full_job("job_writes01")
    docs = [ODD, fold(job), *(event_record(e) for e in job)]
    for data in docs:
        ref = client.collection("jobs").document("job_writes01")
        batch = client.batch()
        writes.create(batch, ref, data)
        assert written(batch) == library_create(ref, data)


def test_updates_are_the_librarys(client: firestore.Client) -> None:
    ref = client.collection("jobs").document("job_writes02")
    evs = full_job("job_writes02")
    updated_at = DatetimeWithNanoseconds(2026, 11, 20, 9, 31, 0, nanosecond=987654321, tzinfo=UTC)
    pairs = [(fold(evs[:k]), fold(evs[: k + 1])) for k in range(1, len(evs))]
    pairs.append(({**ODD, "gone": 1, "also gone": {"x": 1}}, {**ODD, "int": 8, "nested": {}, "new": [AT]}))
    for before, after in pairs:
        batch = client.batch()
        writes.update(batch, ref, *changes(before, after), last_update_time=updated_at)
        assert written(batch) == library_update(ref, before, after, updated_at)
    batch = client.batch()
    writes.update(batch, ref, {"status": "COMPLETED"}, [], last_update_time=AT)  # a plain datetime too
    assert written(batch) == library_update(ref, {"status": "DIARIZED"}, {"status": "COMPLETED"}, AT)


def test_values_it_does_not_know_go_through_the_library(client: firestore.Client) -> None:
    ref = client.collection("jobs").document("job_writes03")
    data = {"bytes": b"\x00\x01", "set": {1}, "point": firestore.GeoPoint(1.0, 2.0), "text": "t"}
    batch = client.batch()
    writes.create(batch, ref, data)
    assert written(batch) == library_create(ref, data)
    batch = client.batch()
    writes.update(batch, ref, {"bytes": b"\x02"}, ["set"], last_update_time=AT)
    option = firestore.Client.write_option(last_update_time=AT)
    expected = _helpers.pbs_for_update(ref._document_path, {"bytes": b"\x02", "set": firestore.DELETE_FIELD}, option)
    assert written(batch) == [w._pb.SerializeToString(deterministic=True) for w in expected]


def test_an_update_that_changes_nothing_is_refused(client: firestore.Client) -> None:
    with pytest.raises(ValueError, match="empty"):
        writes.update(client.batch(), client.collection("jobs").document("j"), {}, [], last_update_time=AT)
