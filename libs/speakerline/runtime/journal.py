"""The pull worker's journal of the messages it is handling, which a worker restarted after a crash resumes."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speakerline.runtime.outcomes import Delivery


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
        return self.folder / hashlib.sha256(ack_id.encode()).hexdigest()[:32]

    def add(self, subscription: str, ack_id: str, delivery: Delivery | None = None, resumed: bool = False) -> None:
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
