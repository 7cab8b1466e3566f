"""Schema evolution rules and the generated AsyncAPI document."""

from __future__ import annotations

import copy

from speakerline import events, topology
from speakerline_tools import contracts

BASE = {
    "type": "object",
    "required": ["job_id", "error"],
    "properties": {
        "job_id": {"type": "string", "pattern": "^[a-z]+$"},
        "error": {"type": "object", "required": ["code"], "properties": {"code": {"type": "string"}}},
    },
}


def _changed(mutate) -> list[str]:  # type: ignore[no-untyped-def]
    current = copy.deepcopy(BASE)
    mutate(current)
    return contracts.compatibility_problems(BASE, current)


def test_adding_an_optional_field_is_compatible() -> None:
    assert _changed(lambda s: s["properties"].update(note={"type": "string"})) == []
    assert _changed(lambda s: s["properties"]["error"]["properties"].update(hint={"type": "string"})) == []


def test_descriptions_may_change() -> None:
    assert _changed(lambda s: s["properties"]["job_id"].update(description="the job")) == []


def test_breaking_changes_are_reported() -> None:
    assert _changed(lambda s: s["required"].append("note") or s["properties"].update(note={"type": "string"}))
    assert _changed(lambda s: s["properties"].pop("job_id"))
    assert _changed(lambda s: s["properties"]["job_id"].update(type="integer"))
    assert _changed(lambda s: s["properties"]["job_id"].update(pattern="^[a-z0-9]+$"))
    assert _changed(lambda s: s["properties"]["error"]["required"].append("message"))
    assert _changed(lambda s: s.update(additionalProperties=False))


def test_released_schemas_are_unbroken() -> None:
    problems = contracts.check_against_released()
    assert problems == {}, "a released schema changed incompatibly: add a new major version instead"


def test_every_schema_is_released() -> None:
    released = contracts.load_released()
    assert set(released) == set(events.catalog().by_type), "run `speakerline schemas release`"


def test_asyncapi_document_is_fresh() -> None:
    expected = contracts.render_asyncapi(topology.load())
    assert contracts.asyncapi_file().read_text() == expected, "run `speakerline schemas asyncapi`"


def test_asyncapi_covers_every_event_on_its_topic() -> None:
    doc = contracts.asyncapi_document(topology.load())
    assert doc["asyncapi"] == "3.0.0"
    for schema in events.catalog():
        key = f"{schema.name}.v{schema.major}"
        message = doc["components"]["messages"][key]
        assert message["name"] == schema.type
        assert message["headers"]["properties"]["ce-type"]["const"] == schema.type
        channel = topology.load().topic_for_event_type(schema.type)
        assert key in doc["channels"][channel]["messages"]
        assert message["examples"][0]["payload"]["job_id"]
