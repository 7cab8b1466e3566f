"""The declarative topology: routing by topic, dead-letter policies everywhere."""

from __future__ import annotations

from speakerline import events, runtime, topology
from speakerline_tools import provision


def test_every_event_type_has_exactly_one_topic() -> None:
    topo = topology.load()
    for schema in events.catalog():
        carriers = [t.name for t in topo.topics.values() if schema.type in t.event_types]
        assert len(carriers) == 1, (schema.type, carriers)


def test_topics_only_carry_known_types() -> None:
    known = set(events.catalog().by_type)
    for t in topology.load().topics.values():
        assert set(t.event_types) <= known


def test_every_subscription_has_a_dead_letter_policy_without_ordering() -> None:
    topo = topology.load()
    for sub in topo.subscriptions.values():
        request = provision.subscription_request("p", sub)
        policy = request["dead_letter_policy"]
        assert isinstance(policy, dict)
        assert policy["dead_letter_topic"] == f"projects/p/topics/{sub.name}-dead-letter"
        assert 5 <= policy["max_delivery_attempts"] <= 100
        assert request["enable_message_ordering"] is False
        assert sub.retry.minimum_backoff_s < sub.retry.maximum_backoff_s


def test_local_profile_only_speeds_up_retries_and_shortens_ack_deadlines() -> None:
    cloud, local = topology.load(), topology.load(profile="local")
    assert set(cloud.subscriptions) == set(local.subscriptions)
    for name, sub in cloud.subscriptions.items():
        assert local.subscriptions[name].retry.minimum_backoff_s <= sub.retry.minimum_backoff_s
        # local consumers are pull workers renewing leases of LEASE_EXTENSION_S: the deadline matches the lease
        assert local.subscriptions[name].ack_deadline_s == runtime.LEASE_EXTENSION_S <= sub.ack_deadline_s
        assert local.subscriptions[name].max_delivery_attempts == sub.max_delivery_attempts


def test_uploads_bucket_notifies_a_topic_of_the_topology() -> None:
    topo = topology.load()
    note = topo.buckets["uploads"].notification
    assert note is not None and note.topic in topo.topics and note.event_types == ("OBJECT_FINALIZE",)
    assert {"uploads", "work", "results"} <= set(topo.buckets)


def test_only_settings_read_which_topology_file_to_load(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from speakerline.settings import Settings

    other = tmp_path / "topology.yaml"
    other.write_text(topology.default_path().read_text())
    monkeypatch.setenv("SPEAKERLINE_TOPOLOGY", str(other))
    assert topology.default_path() != other  # the checkout's, whatever the environment says
    assert Settings().topology_file == other
    assert Settings().topology == topology.load(other)
