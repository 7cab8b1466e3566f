"""FirestoreJobStore and the CLI's read side against the real Firestore emulator."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import firestore

from projector.store import FirestoreJobStore
from speakerline import events
from speakerline.jobs import EVENTS_SUBCOLLECTION, JOBS_COLLECTION
from speakerline_tools import jobstore
from speakerline_tools.stack import StackConfig

from .jobevents import HAPPY, fold, full_job, make

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(emulators: StackConfig) -> firestore.Client:
    return firestore.Client(project=emulators.project)


@pytest.fixture
def store(client: firestore.Client) -> FirestoreJobStore:
    return FirestoreJobStore(client)


@pytest.fixture
def job_id(unique: str) -> str:
    return f"job_store_{unique}"


# Each test's jobs live at their own point in time so that listing by updated_at is not disturbed by other tests.
@pytest.fixture
def t0() -> datetime:
    return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=random.randrange(1_000_000))


def event_ids(client: firestore.Client, job_id: str) -> list[str]:
    ref = client.collection(JOBS_COLLECTION).document(job_id).collection(EVENTS_SUBCOLLECTION)
    return sorted(snap.id for snap in ref.stream())


def test_applied_events_read_back_as_the_projection(
    client: firestore.Client, store: FirestoreJobStore, job_id: str, t0: datetime
) -> None:
    evs = full_job(job_id, t0=t0)
    assert [store.apply(e) for e in evs] == [True] * len(evs)

    job = jobstore.get_job(client, job_id)
    assert job == fold(evs)
    assert job["status"] == "COMPLETED"
    assert job["stages"]["completed_at"] == t0 + timedelta(seconds=35)
    assert job["stages"]["completed_at"].tzinfo is not None
    assert job["result"]["summary"]["num_speakers"] == 3
    assert jobstore.get_job(client, f"{job_id}_missing") is None

    recorded = jobstore.job_events(client, job_id)
    assert [e["id"] for e in recorded] == [e.id for e in evs]
    assert recorded[0] == {
        "id": evs[0].id,
        "type": events.AudioUploaded.TYPE,
        "time": t0,
        "source": "//speakerline/tests",
        "data": evs[0].payload(),
    }
    assert "COMPLETED" in jobstore.format_job_detail(job)


def test_the_same_event_twice_is_applied_once(
    client: firestore.Client, store: FirestoreJobStore, job_id: str, t0: datetime
) -> None:
    first, second = make("audio.uploaded", job_id, t0=t0), make("audio.ingested", job_id, t0=t0)
    assert store.apply(first) is True
    assert store.apply(second) is True
    before = jobstore.get_job(client, job_id)
    assert store.apply(second) is False
    assert store.apply(first) is False
    assert jobstore.get_job(client, job_id) == before
    assert before is not None and before["event_count"] == 2
    assert event_ids(client, job_id) == sorted([first.id, second.id])


def test_out_of_order_application_ends_in_the_same_document(
    client: firestore.Client, store: FirestoreJobStore, job_id: str, t0: datetime
) -> None:
    evs = full_job(job_id, t0=t0)
    for event in reversed(evs):
        store.apply(event)
    job = jobstore.get_job(client, job_id)
    assert job == fold(evs)
    assert job is not None and job["status"] == "COMPLETED"
    # job_events orders by event time, not by arrival.
    assert [e["id"] for e in jobstore.job_events(client, job_id)] == [e.id for e in evs]


@pytest.mark.parametrize("instances", [1, 4], ids=["threads of one projector", "four projector instances"])
def test_concurrent_application_from_several_threads_is_consistent(
    client: firestore.Client, store: FirestoreJobStore, job_id: str, t0: datetime, instances: int
) -> None:
    """Four threads deliver every event. Within one projector they take turns per job; four instances (no shared
    lock) race for the same document, and the write preconditions make every loser read again."""
    stores = [store, *(FirestoreJobStore(client) for _ in range(instances - 1))]
    evs = [*full_job(job_id, t0=t0), make("job.failed", job_id, at=31, t0=t0)]
    applied: list[bool] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        # Every thread delivers every event (as redeliveries to several subscribers would), in its own order.
        order = list(evs)
        random.Random(seed).shuffle(order)
        for event in order:
            result = stores[seed % len(stores)].apply(event)
            with lock:
                applied.append(result)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert applied.count(True) == len(evs)
    assert applied.count(False) == 3 * len(evs)
    job = jobstore.get_job(client, job_id)
    assert job == fold(evs)
    assert job is not None and job["event_count"] == len(evs) and job["status"] == "COMPLETED"
    assert event_ids(client, job_id) == sorted(e.id for e in evs)


def test_list_jobs_filters_by_status_and_orders_by_latest_update(
    client: firestore.Client, store: FirestoreJobStore, unique: str, t0: datetime
) -> None:
    # Three rejected jobs updated at t0+14s+{0,1,2}h and one completed one.
    rejected = [f"job_list_{unique}_{i}" for i in range(3)]
    for i, jid in enumerate(rejected):
        store.apply(make("audio.uploaded", jid, at=3600 * i, t0=t0))
        store.apply(make("job.rejected", jid, at=3600 * i + 14, t0=t0))
    completed = f"job_list_{unique}_done"
    for name in HAPPY:
        store.apply(make(name, completed, t0=t0))

    listed = jobstore.list_jobs(client, status="REJECTED", limit=1000)
    assert all(j["status"] == "REJECTED" for j in listed)
    ours = [j["job_id"] for j in listed if j["job_id"] in rejected]
    assert ours == list(reversed(rejected))
    stamps = [j["updated_at"] for j in listed]
    assert stamps == sorted(stamps, reverse=True)

    everything = [j["job_id"] for j in jobstore.list_jobs(client, status=None, limit=1000)]
    assert completed in everything and set(rejected) <= set(everything)
    assert len(jobstore.list_jobs(client, status="rejected", limit=2)) == 2
    line = jobstore.format_job_line(listed[0])
    assert "REJECTED" in line and "unsupported_format" in line
