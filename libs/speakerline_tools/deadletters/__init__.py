"""Dead-letter inspection, replay and purge for ops: safe (dry run unless asked, filters, nothing lost), audited.

Every service subscription `<sub>` has a dead-letter topic and subscription `<sub>-dead-letter`. A message gets
there two ways: Pub/Sub moves it after the last failed delivery (attributes `CloudPubSubDeadLetterSource*`), or
the runtime forwards a message that must never be processed (attributes `speakerline-dead-letter-*`).

Reading never consumes: the messages pulled are handed back at once (ack deadline 0). Replay republishes a
message to the topic its subscription reads, with the dead-letter attributes removed and `speakerline-replay-*`
attributes added, and acknowledges it in the dead-letter subscription only after the publish succeeded. Every
consumer is idempotent (event ids), so the other subscriptions of that topic seeing it again is harmless.
Messages that never were valid events are not replayed unless explicitly included: they would only be
dead-lettered again. Purge acknowledges (deletes for good) and never runs without a filter.

Every replay and purge, executed or dry run, is logged and recorded in the Firestore collection `dlq_audit`
(one document per operation, `AuditTrail`); an executed one is recorded before it touches anything, so that an
operation cut short still leaves its record.
"""

from speakerline_tools.deadletters.audit import AUDIT_COLLECTION, Action, AuditTrail, Report
from speakerline_tools.deadletters.letters import (
    EXCERPT_BYTES,
    PUBSUB_DEAD_LETTER_PREFIX,
    REPLAY_ATTR,
    RETRIES_EXHAUSTED,
    UNKNOWN_REASON,
    DeadLetter,
    Filter,
    excerpt,
    parse_since,
    render_data,
    replay_attributes,
    safe_text,
    select,
)
from speakerline_tools.deadletters.pacing import Pacer
from speakerline_tools.deadletters.queue import LEASE_RENEW_S, LEASE_S, MAX_SCAN, DeadLetterQueue

__all__ = [
    "AUDIT_COLLECTION",
    "EXCERPT_BYTES",
    "LEASE_RENEW_S",
    "LEASE_S",
    "MAX_SCAN",
    "PUBSUB_DEAD_LETTER_PREFIX",
    "REPLAY_ATTR",
    "RETRIES_EXHAUSTED",
    "UNKNOWN_REASON",
    "Action",
    "AuditTrail",
    "DeadLetter",
    "DeadLetterQueue",
    "Filter",
    "Pacer",
    "Report",
    "excerpt",
    "parse_since",
    "render_data",
    "replay_attributes",
    "safe_text",
    "select",
]
