"""CloudEvent contracts: building, the Pub/Sub binary mapping, and refusal of anything invalid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speakerline import events

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "events"
EXAMPLES = sorted(SCHEMAS.glob("*/v*.example.json"))


def _example(name: str) -> dict:
    return json.loads((SCHEMAS / name / "v1.example.json").read_text())


def test_catalog_has_the_event_types() -> None:
    names = {s.name for s in events.catalog()}
    assert names == {
        "audio.uploaded",
        "audio.ingested",
        "job.rejected",
        "diarization.started",
        "diarization.progress",
        "diarization.completed",
        "job.completed",
        "job.failed",
        "notification.delivered",
        "notification.failed",
    }


@pytest.mark.parametrize("schema_file", sorted(SCHEMAS.glob("*/v*.schema.json")), ids=lambda p: p.parent.name)
def test_schema_id_type_and_file_agree(schema_file: Path) -> None:
    doc = json.loads(schema_file.read_text())
    major = schema_file.name.split(".")[0]
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == f"{events.SCHEMA_BASE_URI}/{schema_file.parent.name}/{major}.schema.json"
    assert doc["title"] == f"io.speakerline.{schema_file.parent.name}.{major}"


def test_every_schema_has_an_example() -> None:
    assert {p.parent.name for p in EXAMPLES} == {s.name for s in events.catalog()}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.parent.name)
def test_examples_validate_and_name_their_schema(example: Path) -> None:
    doc = json.loads(example.read_text())
    schema = events.catalog().validate(doc["type"], doc["data"])
    assert doc["dataschema"] == schema.dataschema
    assert doc["type"].endswith(".v1")


def _uploaded(**overrides: object) -> dict:
    data = _example("audio.uploaded")["data"]
    data.update(overrides)
    return data


def test_binary_mode_round_trip_keeps_every_attribute() -> None:
    event = events.new_event("io.speakerline.audio.uploaded.v1", _uploaded(), source="//speakerline/test")
    body, attributes = events.to_pubsub(event)
    assert json.loads(body) == event.get_data()
    assert attributes["ce-type"] == "io.speakerline.audio.uploaded.v1"
    assert attributes["ce-specversion"] == "1.0"
    assert attributes["content-type"] == "application/json"
    assert attributes["ce-jobid"] == event.get_data()["job_id"]
    assert attributes["ce-subject"] == f"jobs/{event.get_data()['job_id']}"
    assert attributes["ce-dataschema"].endswith("/audio.uploaded/v1.schema.json")
    back = events.from_pubsub(body, attributes)
    assert back["id"] == event["id"] and back["time"] == event["time"] and back.get_data() == event.get_data()


def test_refuses_to_build_an_invalid_event() -> None:
    with pytest.raises(events.InvalidEvent) as exc:
        events.new_event("io.speakerline.audio.uploaded.v1", _uploaded(job_id="NOT VALID"), source="//t")
    assert exc.value.code == "schema_violation"
    assert "job_id" in exc.value.message


def test_num_speakers_excludes_a_range() -> None:
    data = _uploaded()
    data["request"]["options"] = {"num_speakers": 2, "max_speakers": 3}
    with pytest.raises(events.InvalidEvent, match="schema_violation"):
        events.new_event("io.speakerline.audio.uploaded.v1", data, source="//t")


def test_caused_event_continues_the_trace() -> None:
    cause = events.new_event("io.speakerline.audio.uploaded.v1", _uploaded(), source="//t")
    data = _example("audio.ingested")["data"]
    child = events.new_event("io.speakerline.audio.ingested.v1", data, source="//t", cause=cause)
    cause_trace, cause_span = events.trace_ids(cause) or ("", "")
    child_trace, child_span = events.trace_ids(child) or ("", "")
    assert child_trace == cause_trace and child_span != cause_span


BASE_ATTRS = {"ce-specversion": "1.0", "ce-source": "//t", "ce-id": "1", "content-type": "application/json"}


@pytest.mark.parametrize(
    ("data", "attributes", "code"),
    [
        (b"hello", {}, "not_a_cloudevent"),
        (b'{"job_id": "x"}', {"foo": "bar"}, "not_a_cloudevent"),
        (b"{}", {"ce-type": "io.speakerline.audio.uploaded.v1"}, "not_a_cloudevent"),
        (b"{}", {**BASE_ATTRS, "ce-type": "com.example.other.v1"}, "unknown_event_type"),
        (b"{}", {**BASE_ATTRS, "ce-type": "io.speakerline.audio.uploaded.v2"}, "unknown_major_version"),
        (b"{}", {**BASE_ATTRS, "ce-type": "io.speakerline.audio.uploaded.v1"}, "schema_violation"),
        (b"not json", {**BASE_ATTRS, "ce-type": "io.speakerline.audio.uploaded.v1"}, "malformed_data"),
        (
            b"{}",
            {**BASE_ATTRS, "ce-specversion": "0.3", "ce-type": "io.speakerline.audio.uploaded.v1"},
            "unsupported_specversion",
        ),
    ],
)
def test_invalid_messages_are_refused_with_a_reason(data: bytes, attributes: dict, code: str) -> None:
    with pytest.raises(events.InvalidEvent) as exc:
        events.from_pubsub(data, attributes)
    assert exc.value.code == code
    assert exc.value.message


def test_dataschema_must_match_the_type() -> None:
    event = events.new_event("io.speakerline.audio.uploaded.v1", _uploaded(), source="//t")
    body, attributes = events.to_pubsub(event)
    attributes["ce-dataschema"] = "https://example.com/other.json"
    with pytest.raises(events.InvalidEvent, match="dataschema_mismatch"):
        events.from_pubsub(body, attributes)


def test_structured_mode_is_accepted_on_receipt() -> None:
    event = events.new_event("io.speakerline.audio.uploaded.v1", _uploaded(), source="//t")
    back = events.from_pubsub(events.to_structured_json(event), {"content-type": "application/cloudevents+json"})
    assert back.get_data() == event.get_data()
