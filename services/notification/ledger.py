"""Which channels already got an outcome event: so that a redelivered job outcome (after a crash between two
channels, or a retry because another channel failed) does not reach a receiver twice.

A delivery is recorded right after the receiver answered 2xx, keyed by (event id, channel). The only window left
is a crash between that answer and the record: then the receiver gets the event again, which WEBHOOKS.md tells
receivers to deduplicate by `Speakerline-Event-Id` (delivery stays at-least-once; it is just rarely twice).

Firestore layout: `notification_deliveries/{event_id}~{channel}` = {event_id, channel, job_id, status_code,
delivered_at, expire_at}; `expire_at` (message retention plus a day) is the collection's TTL field in Terraform,
so the ledger outlives every redelivery and replay window and then goes away by itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

COLLECTION = "notification_deliveries"
#: Pub/Sub keeps a dead letter 7 days (infra/topology.yaml): a replay within that time must still be deduplicated
KEEP = dt.timedelta(days=8)


@dataclass(frozen=True)
class PastDelivery:
    status_code: int | None  # what the receiver answered


class DeliveryLedger(Protocol):
    def delivered(self, event_id: str, channel: str) -> PastDelivery | None:
        """How `event_id` was delivered to the channel, or None if it was not."""
        ...

    def record(self, event_id: str, channel: str, job_id: str, status_code: int | None) -> None: ...


def _doc_id(event_id: str, channel: str) -> str:
    return f"{event_id}~{channel}".replace("/", "_")


class FirestoreLedger:
    """The ledger in Firestore; `client` gives the google.cloud.firestore.Client (the platform's), asked for on first
    use, so that wiring the service needs no credentials."""

    def __init__(self, client: Callable[[], Any]) -> None:
        self._client = client

    @cached_property
    def collection(self) -> Any:
        return self._client().collection(COLLECTION)

    def delivered(self, event_id: str, channel: str) -> PastDelivery | None:
        snapshot = self.collection.document(_doc_id(event_id, channel)).get()
        if not snapshot.exists:
            return None
        return PastDelivery((snapshot.to_dict() or {}).get("status_code"))

    def record(self, event_id: str, channel: str, job_id: str, status_code: int | None) -> None:
        now = dt.datetime.now(dt.UTC)
        self.collection.document(_doc_id(event_id, channel)).set(
            {
                "event_id": event_id,
                "channel": channel,
                "job_id": job_id,
                "status_code": status_code,
                "delivered_at": now,
                "expire_at": now + KEEP,
            }
        )
