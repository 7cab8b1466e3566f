"""CloudEvent contracts: typed events, the Pub/Sub binary mapping, and refusal of anything invalid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speakerline import events

SCHEMAS = Path("schemas/events")
EXAMPLES = sorted(SCHEMAS.glob("*/v*.example.json"))


def _example(name: str) -> dict:
    return json.loads((SCHEMAS / name / "v1.example.json").read_text())


def test_the_bundled_catalog_is_the_schemas_on_disk() -> None:
    # The runtime validates against the bundled catalog: a schema missing from it (or a stale one) fails there.
    on_disk = {json.loads(p.read_text())["title"] for p in SCHEMAS.glob("*/v*.schema.json")}  # title: the type
    assert set(events.catalog().by_type) == on_disk  # (test_codegen checks the event classes against them)


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


def _uploaded_data(**overrides: object) -> dict:
    data = _example("audio.uploaded")["data"]
    data.update(overrides)
    return data


def _uploaded(**overrides: object) -> events.AudioUploaded:
    data = events.models.AudioUploadedV1Data.model_validate(_uploaded_data(**overrides))
    return events.AudioUploaded.new(data, source="//speakerline/test")


def test_binary_mode_round_trip_keeps_every_attribute() -> None:
    event = _uploaded()
    body, attributes = events.to_pubsub(event)
    assert json.loads(body) == event.payload() == _uploaded_data()
    assert attributes["ce-type"] == events.AudioUploaded.TYPE == "io.speakerline.audio.uploaded.v1"
    assert attributes["ce-specversion"] == "1.0"
    assert attributes["content-type"] == "application/json"
    assert attributes["ce-jobid"] == event.job_id == event.data.job_id
    assert attributes["ce-subject"] == f"jobs/{event.data.job_id}"
    assert attributes["ce-dataschema"].endswith("/audio.uploaded/v1.schema.json")
    back = events.parse_pubsub(body, attributes)
    assert isinstance(back, events.AudioUploaded)
    assert back.id == event.id and back.time == event.time and back.data == event.data
    assert back.traceparent == event.traceparent


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_example_parses_to_its_class_and_back_unchanged(example: Path) -> None:
    doc = json.loads(example.read_text())
    event = events.parse_json(example.read_bytes())
    assert type(event) is events.EVENT_CLASSES[doc["type"]]
    assert isinstance(event.data, type(event).DATA)
    assert event.payload() == doc["data"]  # optional fields stay absent, required nulls stay null, nothing lost
    assert event.to_cloudevent()["id"] == doc["id"]


def test_fields_a_newer_minor_version_adds_survive_a_pass_through() -> None:
    data = _uploaded_data()
    data["request"]["priority"] = "high"  # not in v1: a producer on a newer minor version
    event = events.AudioUploaded.new(events.models.AudioUploadedV1Data.model_validate(data), source="//t")
    assert event.payload()["request"]["priority"] == "high"


def test_refuses_to_build_an_invalid_event() -> None:
    # The generated model refuses it when it is built...
    with pytest.raises(ValueError, match="job_id"):
        _uploaded(job_id="NOT VALID")
    # ...and the JSON Schema, the authority, refuses it on the way out even when the model was bypassed.
    data = events.models.AudioUploadedV1Data.model_construct(**_uploaded(job_id="job_abcdefgh").data.__dict__)
    data.job_id = "NOT VALID"
    with pytest.raises(events.InvalidEvent) as exc:
        events.AudioUploaded.new(data, source="//t").to_cloudevent()
    assert exc.value.code == "schema_violation"
    assert "job_id" in exc.value.message


def test_num_speakers_excludes_a_range() -> None:
    # A cross-field rule the generated model does not express: the schema still enforces it on publish.
    event = _uploaded()
    event.data.request.options = events.models.Options(num_speakers=2, max_speakers=3)
    with pytest.raises(events.InvalidEvent, match="schema_violation"):
        events.to_pubsub(event)


def test_caused_event_continues_the_trace_and_has_a_derived_id() -> None:
    cause = _uploaded()
    data = events.models.AudioIngestedV1Data.model_validate(_example("audio.ingested")["data"])
    child = events.AudioIngested.caused_by(cause, data, source="//t")
    again = events.AudioIngested.caused_by(cause, data, source="//t")
    other = events.AudioIngested.caused_by(cause, data, source="//t", discriminator="2")
    cause_trace, cause_span = events.trace_ids(cause.to_cloudevent()) or ("", "")
    child_trace, child_span = events.trace_ids(child.to_cloudevent()) or ("", "")
    assert child_trace == cause_trace and child_span != cause_span
    assert child.id == again.id != other.id  # a redelivered cause yields the very same event


def test_parse_takes_a_received_pubsub_message() -> None:
    class Message:  # what google-cloud-pubsub hands a subscriber callback
        def __init__(self, data: bytes, attributes: dict[str, str]) -> None:
            self.data, self.attributes = data, attributes

    body, attributes = events.to_pubsub(_uploaded())
    assert isinstance(events.parse(Message(body, attributes)), events.AudioUploaded)
    with pytest.raises(events.InvalidEvent) as exc:
        events.parse(Message(b"hello", {}))
    assert exc.value.code == "not_a_cloudevent"


def test_event_type_strings_are_written_once_in_the_code() -> None:
    """Services and libraries name event types through the classes; the string is in typed.py only."""
    code = [*Path("libs").rglob("*.py"), *Path("services").rglob("*.py")]
    for cls in events.EVENT_CLASSES.values():
        holders = [str(p) for p in code if cls.TYPE in p.read_text()]
        assert holders == ["libs/speakerline/events/typed.py"], (cls.TYPE, holders)
    assert set(events.EVENT_CLASSES) == set(events.catalog().by_type)


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
        events.parse_pubsub(data, attributes)
    assert exc.value.code == code
    assert exc.value.message


def test_dataschema_must_match_the_type() -> None:
    body, attributes = events.to_pubsub(_uploaded())
    attributes["ce-dataschema"] = "https://example.com/other.json"
    with pytest.raises(events.InvalidEvent, match="dataschema_mismatch"):
        events.parse_pubsub(body, attributes)


def test_structured_mode_is_accepted_on_receipt() -> None:
    event = _uploaded()
    back = events.parse_json(events.to_structured_json(event.to_cloudevent()))
    assert back.payload() == event.payload() and back.id == event.id


@pytest.mark.parametrize("attribute", ["ce-id", "ce-source", "ce-type", "ce-specversion"])
def test_a_missing_or_empty_required_attribute_is_named(attribute: str) -> None:
    body, attributes = events.to_pubsub(_uploaded())
    for value in (None, ""):
        broken = {k: v for k, v in attributes.items() if k != attribute}
        if value is not None:
            broken[attribute] = value
        with pytest.raises(events.InvalidEvent) as exc:
            events.parse_pubsub(body, broken)
        assert exc.value.code == "not_a_cloudevent" and attribute in exc.value.message


def test_a_structured_event_with_an_empty_id_is_refused() -> None:
    body = json.dumps({"specversion": "1.0", "id": "", "source": "//t", "type": events.AudioUploaded.TYPE, "data": {}})
    with pytest.raises(events.InvalidEvent, match="id"):
        events.parse_json(body.encode())
