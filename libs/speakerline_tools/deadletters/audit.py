"""The record of every replay and purge: the operation's `Report`, kept in Firestore by `AuditTrail`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from google.cloud import firestore

AUDIT_COLLECTION = "dlq_audit"

Action = Literal["replay", "purge"]


@dataclass
class Report:
    """What one replay or purge did (or, in a dry run, would do); its audit record is `audit_record()`."""

    action: Action
    subscription: str
    operator: str
    executed: bool
    filter: dict[str, Any]
    options: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: replayed / purged (in a dry run: would be), each a DeadLetter summary
    done: list[dict[str, Any]] = field(default_factory=list)
    #: matched but left alone, each with `why`
    skipped: list[dict[str, Any]] = field(default_factory=list)
    #: message ids an executed operation was about to touch when it started
    planned: list[str] = field(default_factory=list)
    #: the subscription held more than MAX_SCAN messages: some may not have been looked at
    truncated: bool = False
    error: str | None = None
    finished: bool = False

    @property
    def status(self) -> str:
        if not self.executed:
            return "dry_run"
        if not self.finished:
            return "started"
        return "failed" if self.error else "completed"

    def to_dict(self) -> dict[str, Any]:
        verb = "replayed" if self.action == "replay" else "purged"
        return {
            f"{self.action}_id": self.id,
            "action": self.action,
            "subscription": self.subscription,
            "operator": self.operator,
            "at": self.at.isoformat(),
            "executed": self.executed,
            "status": self.status,
            "filter": self.filter,
            "options": self.options,
            verb: self.done,
            "skipped": self.skipped,
            "truncated": self.truncated,
            "error": self.error,
        }

    def audit_record(self) -> dict[str, Any]:
        """The `dlq_audit/{id}` document."""
        return {
            "id": self.id,
            "action": self.action,
            "operator": self.operator,
            "at": self.at,
            "subscription": self.subscription,
            "filter": self.filter,
            "options": self.options,
            "dry_run": not self.executed,
            "status": self.status,
            "message_ids": [row["message_id"] for row in self.done],
            "count": len(self.done),
            "planned_message_ids": self.planned,
            "skipped_message_ids": [row["message_id"] for row in self.skipped],
            "truncated": self.truncated,
            "error": self.error,
        }


class AuditTrail:
    """The `dlq_audit` collection: one document per replay or purge, by operation id."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def record(self, report: Report) -> None:
        self.client.collection(AUDIT_COLLECTION).document(report.id).set(report.audit_record())

    def get(self, operation_id: str) -> dict[str, Any] | None:
        snap = self.client.collection(AUDIT_COLLECTION).document(operation_id).get()
        return snap.to_dict() if snap.exists else None

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` records, newest first."""
        query = self.client.collection(AUDIT_COLLECTION).order_by("at", direction=firestore.Query.DESCENDING)
        return [snap.to_dict() for snap in query.limit(limit).stream()]
