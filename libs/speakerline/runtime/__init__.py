"""The one place where Pub/Sub messages meet handlers, for both delivery styles.

A service is a table of handlers (`ServiceDef`, `service`); `infra/topology.yaml` says which subscription feeds which
handler. For every message, `process` (`outcomes`) decides one of three outcomes: ACK, NACK (Pub/Sub redelivers,
then dead-letters) or DEAD_LETTER (forwarded at once: the message can never be processed).

Handlers see typed events (`speakerline.events`) and a `Context`; whatever they return is published here.
`run_pull` (`pull`, with `leases` and the crash `journal`) runs a service as a pull worker (GPU hosts without
ingress); `handle_push_envelope` (`push`) serves the push HTTP function behind a Pub/Sub push subscription (Cloud
Run); see `speakerline.bootstrap`.
"""

from speakerline.runtime.journal import Inflight, InflightJournal
from speakerline.runtime.leases import LEASE_EXTENSION_S, LEASE_RENEW_S, Leases
from speakerline.runtime.outcomes import DEAD_LETTER_ATTR, Delivery, Outcome, process
from speakerline.runtime.pull import PULL_WAIT_S, PullWorker, run_pull
from speakerline.runtime.push import RedeliveryRequested, handle_push_envelope
from speakerline.runtime.service import Context, Decoder, ExhaustedHook, Handler, Route, ServiceDef

__all__ = [
    "DEAD_LETTER_ATTR",
    "LEASE_EXTENSION_S",
    "LEASE_RENEW_S",
    "PULL_WAIT_S",
    "Context",
    "Decoder",
    "Delivery",
    "ExhaustedHook",
    "Handler",
    "Inflight",
    "InflightJournal",
    "Leases",
    "Outcome",
    "PullWorker",
    "RedeliveryRequested",
    "Route",
    "ServiceDef",
    "handle_push_envelope",
    "process",
    "run_pull",
]
