"""Keeping the messages a pull worker is handling leased, in short steps."""

from __future__ import annotations

import threading
import time
from typing import Any

# Seconds each lease extension of a message in flight asks for, and how often they are renewed (see `Leases`): a
# worker that dies without a word gives its messages back within LEASE_EXTENSION_S.
LEASE_EXTENSION_S = 30
LEASE_RENEW_S = 10.0


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
