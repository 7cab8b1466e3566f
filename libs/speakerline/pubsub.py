"""Pub/Sub adapter: publish CloudEvents (routed by type to their topic) and raw messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import google.cloud.pubsub_v1 as pubsub_v1

from speakerline.events import CloudEvent, Event, to_pubsub
from speakerline.topology import Topology

PUBLISH_TIMEOUT_S = 60.0


class EventPublisher(Protocol):
    def publish(self, events: Sequence[Event[Any] | CloudEvent]) -> list[str]: ...

    def publish_raw(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str: ...


class PubSubPublisher:
    """Publishes each event to the one topic the topology assigns to its type, and waits for the server's ack."""

    def __init__(self, project: str, topology: Topology, client: pubsub_v1.PublisherClient | None = None) -> None:
        self.project = project
        self.topology = topology
        self.client = client or pubsub_v1.PublisherClient()

    def topic_path(self, topic: str) -> str:
        return str(self.client.topic_path(self.project, topic))

    def publish(self, events: Sequence[Event[Any] | CloudEvent]) -> list[str]:
        futures = []
        for event in events:
            data, attributes = to_pubsub(event)  # validates: an invalid event never leaves the process
            topic = self.topology.topic_for_event_type(attributes["ce-type"])
            futures.append(self.client.publish(self.topic_path(topic), data, **attributes))
        return [str(f.result(timeout=PUBLISH_TIMEOUT_S)) for f in futures]

    def publish_raw(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        future = self.client.publish(self.topic_path(topic), data, **dict(attributes))
        return str(future.result(timeout=PUBLISH_TIMEOUT_S))
