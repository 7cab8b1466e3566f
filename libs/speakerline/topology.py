"""The declarative messaging and storage topology (infra/topology.yaml), loaded into typed objects.

The same file is applied to the local emulators by `speakerline stack up` (see `apply_pubsub` and
`speakerline_tools.stack`) and read by Terraform, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

Payload = Literal["cloudevent", "gcs-notification"]
#: How a service takes work: `events` from its subscriptions (a pull worker, or the push function), or `http`
#: requests to its own ASGI app (the API).
Entrypoint = Literal["events", "http"]
ENTRYPOINTS: tuple[Entrypoint, ...] = ("events", "http")

DEAD_LETTER_SUFFIX = "-dead-letter"


@dataclass(frozen=True)
class RetryPolicy:
    minimum_backoff_s: int
    maximum_backoff_s: int


@dataclass(frozen=True)
class Topic:
    name: str
    description: str
    event_types: tuple[str, ...]


@dataclass(frozen=True)
class Subscription:
    name: str
    topic: str
    service: str
    handler: str
    payload: Payload
    ack_deadline_s: int
    max_delivery_attempts: int
    retry: RetryPolicy
    message_retention_s: int

    @property
    def dead_letter_topic(self) -> str:
        return self.name + DEAD_LETTER_SUFFIX

    @property
    def dead_letter_subscription(self) -> str:
        return self.name + DEAD_LETTER_SUFFIX


@dataclass(frozen=True)
class BucketNotification:
    topic: str
    event_types: tuple[str, ...]
    payload_format: str


@dataclass(frozen=True)
class Bucket:
    key: str
    name: str
    lifecycle_delete_after_days: int
    notification: BucketNotification | None


@dataclass(frozen=True)
class Service:
    name: str
    module: str
    description: str
    gpu: bool
    entrypoint: Entrypoint = "events"


@dataclass(frozen=True)
class Topology:
    topics: Mapping[str, Topic]
    subscriptions: Mapping[str, Subscription]
    buckets: Mapping[str, Bucket]
    services: Mapping[str, Service]

    def topic_for_event_type(self, event_type: str) -> str:
        """The one topic an event type is published to."""
        for topic in self.topics.values():
            if event_type in topic.event_types:
                return topic.name
        raise KeyError(f"no topic carries event type {event_type!r}")

    def subscriptions_of(self, service: str) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.service == service]

    def bucket(self, key: str) -> str:
        return self.buckets[key].name


def default_path() -> Path:
    """infra/topology.yaml of the checkout the process runs in (the working directory or a folder above it). A
    process given another file (`Settings.topology_file`, SPEAKERLINE_TOPOLOGY: images ship a copy and set it)
    loads that one: `Settings.topology`."""
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        if (folder / "infra" / "topology.yaml").is_file():
            return folder / "infra" / "topology.yaml"
    raise FileNotFoundError(
        "no infra/topology.yaml is above the working directory (elsewhere, name one with SPEAKERLINE_TOPOLOGY)"
    )


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse(doc: Mapping[str, Any], profile: str | None = None) -> Topology:
    """Build a Topology from the YAML document; `profile` applies that profile's overrides (e.g. "local")."""
    sub_defaults: Mapping[str, Any] = doc["defaults"]["subscription"]
    overrides: Mapping[str, Any] = {}
    if profile:
        profile_doc = doc.get("profiles", {}).get(profile)
        if profile_doc is None:
            raise ValueError(f"unknown topology profile {profile!r}")
        overrides = profile_doc.get("subscription", {})

    topics = {
        name: Topic(name, spec.get("description", ""), tuple(spec.get("event_types", [])))
        for name, spec in doc["topics"].items()
    }
    subscriptions: dict[str, Subscription] = {}
    for name, spec in doc["subscriptions"].items():
        # Per-subscription values win over the defaults, and a profile's (local) over both: every local
        # subscription retries quickly and has the same short ack deadline.
        eff = _merge(_merge(sub_defaults, spec), overrides)
        if spec["topic"] not in topics:
            raise ValueError(f"subscription {name!r} names unknown topic {spec['topic']!r}")
        subscriptions[name] = Subscription(
            name=name,
            topic=spec["topic"],
            service=spec["service"],
            handler=spec["handler"],
            payload=eff.get("payload", "cloudevent"),
            ack_deadline_s=int(eff["ack_deadline_s"]),
            max_delivery_attempts=int(eff["max_delivery_attempts"]),
            retry=RetryPolicy(int(eff["retry"]["minimum_backoff_s"]), int(eff["retry"]["maximum_backoff_s"])),
            message_retention_s=int(eff["message_retention_s"]),
        )
    buckets: dict[str, Bucket] = {}
    for key, spec in doc["buckets"].items():
        note = spec.get("notification")
        notification = None
        if note:
            if note["topic"] not in topics:
                raise ValueError(f"bucket {key!r} notifies unknown topic {note['topic']!r}")
            notification = BucketNotification(note["topic"], tuple(note["event_types"]), note["payload_format"])
        buckets[key] = Bucket(key, spec["name"], int(spec["lifecycle_delete_after_days"]), notification)
    services: dict[str, Service] = {}
    for name, spec in doc["services"].items():
        entrypoint = spec.get("entrypoint", "events")
        if entrypoint not in ENTRYPOINTS:
            raise ValueError(f"service {name!r} has unknown entrypoint {entrypoint!r} (known: {ENTRYPOINTS})")
        services[name] = Service(
            name, spec["module"], spec.get("description", ""), bool(spec.get("gpu", False)), entrypoint
        )
    for sub in subscriptions.values():
        if sub.service not in services:
            raise ValueError(f"subscription {sub.name!r} names unknown service {sub.service!r}")
        if services[sub.service].entrypoint != "events":
            raise ValueError(f"subscription {sub.name!r} feeds {sub.service!r}, which takes http requests, not events")
    return Topology(topics, subscriptions, buckets, services)


@cache
def load(path: Path | None = None, profile: str | None = None) -> Topology:
    """The topology in `path` (None: the checkout's, `default_path`), with `profile`'s overrides."""
    with (path or default_path()).open() as f:
        return parse(yaml.safe_load(f), profile)
