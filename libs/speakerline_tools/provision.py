"""Apply the topology to Pub/Sub and Cloud Storage: idempotent, create-if-missing.

Used by the local stack against the emulators. In the cloud, infra/terraform creates the same resources from the
same infra/topology.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import google.cloud.pubsub_v1 as pubsub_v1
import google.cloud.storage as storage
from google.api_core import exceptions as gexc
from google.protobuf import duration_pb2

from speakerline.topology import Subscription, Topology


@dataclass
class ProvisionReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def _duration(seconds: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds)


def subscription_request(project: str, sub: Subscription) -> dict[str, object]:
    """The CreateSubscription request for a service subscription (pure; unit-tested)."""
    return {
        "name": f"projects/{project}/subscriptions/{sub.name}",
        "topic": f"projects/{project}/topics/{sub.topic}",
        "ack_deadline_seconds": sub.ack_deadline_s,
        "message_retention_duration": _duration(sub.message_retention_s),
        "retry_policy": {
            "minimum_backoff": _duration(sub.retry.minimum_backoff_s),
            "maximum_backoff": _duration(sub.retry.maximum_backoff_s),
        },
        "dead_letter_policy": {
            "dead_letter_topic": f"projects/{project}/topics/{sub.dead_letter_topic}",
            "max_delivery_attempts": sub.max_delivery_attempts,
        },
        "enable_message_ordering": False,
    }


def apply_pubsub(
    topology: Topology,
    project: str,
    publisher: pubsub_v1.PublisherClient | None = None,
    subscriber: pubsub_v1.SubscriberClient | None = None,
) -> ProvisionReport:
    publisher = publisher or pubsub_v1.PublisherClient()
    subscriber = subscriber or pubsub_v1.SubscriberClient()
    report = ProvisionReport()

    topics = list(topology.topics) + [s.dead_letter_topic for s in topology.subscriptions.values()]
    for topic in topics:
        path = publisher.topic_path(project, topic)
        try:
            publisher.create_topic(request={"name": path})
            report.created.append(path)
        except gexc.AlreadyExists:
            report.existing.append(path)

    requests: list[dict[str, object]] = []
    for sub in topology.subscriptions.values():
        requests.append(subscription_request(project, sub))
        # Where ops inspect and replay what a subscription gave up on. It has no dead-letter policy of its own:
        # nothing consumes it automatically.
        requests.append(
            {
                "name": f"projects/{project}/subscriptions/{sub.dead_letter_subscription}",
                "topic": f"projects/{project}/topics/{sub.dead_letter_topic}",
                "ack_deadline_seconds": 60,
                "message_retention_duration": _duration(sub.message_retention_s),
            }
        )
    for request in requests:
        try:
            subscriber.create_subscription(request=request)
            report.created.append(str(request["name"]))
        except gexc.AlreadyExists:
            report.existing.append(str(request["name"]))
    return report


def apply_storage(topology: Topology, client: storage.Client) -> ProvisionReport:
    report = ProvisionReport()
    for bucket in topology.buckets.values():
        try:
            created = client.create_bucket(bucket.name)
            created.add_lifecycle_delete_rule(age=bucket.lifecycle_delete_after_days)
            created.patch()
            report.created.append(bucket.name)
        except gexc.Conflict:
            report.existing.append(bucket.name)
    return report
