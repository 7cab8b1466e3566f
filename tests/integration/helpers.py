"""Helpers for integration tests: pulling from real emulator subscriptions, building throwaway topologies."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1

from speakerline import topology


def pull(project: str, subscription: str, want: int = 1, timeout_s: float = 30.0) -> list[Any]:
    """Synchronously pull (and ack) until `want` messages arrived or the timeout passed."""
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, subscription)
    got: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        response = subscriber.pull(request={"subscription": path, "max_messages": 10}, timeout=5)
        if response.received_messages:
            subscriber.acknowledge(
                request={"subscription": path, "ack_ids": [m.ack_id for m in response.received_messages]}
            )
            got.extend(m.message for m in response.received_messages)
        else:
            time.sleep(0.2)
    return got


def wait_for(predicate: Callable[[], Any], timeout_s: float = 30.0, interval_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s")


def one_subscription_topology(suffix: str, event_types: list[str], max_attempts: int = 5) -> topology.Topology:
    """A topology with one topic and one subscription for service 'probe', handler 'handle'."""
    doc = {
        "defaults": {
            "subscription": {
                "ack_deadline_s": 10,
                "max_delivery_attempts": max_attempts,
                "retry": {"minimum_backoff_s": 0, "maximum_backoff_s": 1},
                "message_retention_s": 3600,
            }
        },
        "topics": {f"probe-{suffix}": {"event_types": event_types}},
        "subscriptions": {f"probe-{suffix}-sub": {"topic": f"probe-{suffix}", "service": "probe", "handler": "handle"}},
        "buckets": {},
        "services": {"probe": {"module": "none"}},
    }
    return topology.parse(doc)
