"""Contract tooling: schema compatibility against the released snapshot, and the AsyncAPI 3 document.

Released schemas are frozen in `schemas/released.json` (`speakerline schemas release` adds new ones). A released
schema may only gain optional properties; anything else (a new required field, a removed field, a changed type,
pattern, enum or bound) needs a new major version file (`v2.schema.json`, type `...v2`), published side by side.
The files are those of the checkout the command runs in (`repo.root()`), looked up when used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from speakerline.events import AudioUploaded, catalog
from speakerline.events.wire import Catalog, EventSchema
from speakerline.topology import Topology
from speakerline_tools import repo


def schemas_dir(root: Path | None = None) -> Path:
    return (root or repo.root()) / "schemas"


def released_file(root: Path | None = None) -> Path:
    return schemas_dir(root) / "released.json"


def asyncapi_file(root: Path | None = None) -> Path:
    return schemas_dir(root) / "asyncapi.yaml"


# Keywords that document rather than constrain: they may change freely.
_ANNOTATIONS = {"description", "title", "examples", "$comment"}


def compatibility_problems(released: Any, current: Any, where: str = "") -> list[str]:
    """Why `current` would break a consumer or producer of `released` (empty when compatible)."""
    here = where or "(root)"
    if not isinstance(released, Mapping) or not isinstance(current, Mapping):
        return [] if released == current else [f"{here}: changed from {released!r} to {current!r}"]
    problems: list[str] = []
    if set(released.get("required", [])) != set(current.get("required", [])):
        problems.append(
            f"{here}: required changed from {sorted(released.get('required', []))} "
            f"to {sorted(current.get('required', []))}"
        )
    old_props: Mapping[str, Any] = released.get("properties", {})
    new_props: Mapping[str, Any] = current.get("properties", {})
    for name, old in old_props.items():
        if name not in new_props:
            problems.append(f"{where}/{name}: removed")
        else:
            problems.extend(compatibility_problems(old, new_props[name], f"{where}/{name}"))
    keys = (set(released) | set(current)) - _ANNOTATIONS - {"properties", "required"}
    for key in sorted(keys):
        if key in ("items", "not") and key in released and key in current:
            problems.extend(compatibility_problems(released[key], current[key], f"{where}/{key}"))
        elif released.get(key) != current.get(key):
            problems.append(f"{here}: '{key}' changed from {released.get(key)!r} to {current.get(key)!r}")
    return problems


def load_released(path: Path | None = None) -> dict[str, Any]:
    path = path or released_file()
    return dict(json.loads(path.read_text())) if path.exists() else {}


def check_against_released(cat: Catalog | None = None, path: Path | None = None) -> dict[str, list[str]]:
    """Problems per event type; a released type missing from the catalog is a problem too."""
    cat = cat or catalog()
    released = load_released(path)
    problems: dict[str, list[str]] = {}
    for event_type, old_schema in released.items():
        if event_type not in cat.by_type:
            problems[event_type] = ["released schema was deleted: keep it until consumers moved to a new major"]
            continue
        found = compatibility_problems(old_schema, cat.by_type[event_type].schema)
        if found:
            problems[event_type] = found
    return problems


def release(cat: Catalog | None = None, path: Path | None = None) -> list[str]:
    """Freeze every schema not yet released; refuses while any released schema has incompatible changes."""
    cat = cat or catalog()
    path = path or released_file()
    problems = check_against_released(cat, path)
    if problems:
        raise ValueError(f"incompatible changes to released schemas: {problems}")
    released = load_released(path)
    added = [t for t in cat.by_type if t not in released]
    # Compatible edits (new optional fields, better descriptions) are frozen too, so later checks compare
    # against the newest released shape.
    released = {t: dict(s.schema) for t, s in cat.by_type.items()}
    path.write_text(json.dumps(released, indent=2, sort_keys=True) + "\n")
    return added


# --- AsyncAPI ----------------------------------------------------------------------------------------------


def _example(name: str, major: int) -> dict[str, Any] | None:
    file = schemas_dir() / "events" / name / f"v{major}.example.json"
    return dict(json.loads(file.read_text())) if file.exists() else None


def _as_written(schema: EventSchema) -> dict[str, Any]:
    """The schema as schemas/events/ has it: the library's bundle sorts keys, the document keeps the authors'
    order (title, description, type, required, properties)."""
    file = schemas_dir() / "events" / schema.name / f"v{schema.major}.schema.json"
    return dict(json.loads(file.read_text())) if file.exists() else dict(schema.schema)


def _headers_schema(event_type: str) -> dict[str, Any]:
    """Pub/Sub message attributes of the CloudEvents binary content mode."""
    return {
        "type": "object",
        "required": ["ce-specversion", "ce-type", "ce-source", "ce-id", "content-type"],
        "properties": {
            "ce-specversion": {"const": "1.0"},
            "ce-type": {"const": event_type},
            "ce-source": {
                "type": "string",
                "description": "The service that published, e.g. //speakerline/services/ingest.",
            },
            "ce-id": {"type": "string", "description": "Unique per event; consumers deduplicate on it."},
            "ce-time": {"type": "string", "format": "date-time"},
            "ce-subject": {"type": "string", "description": "jobs/<job_id>"},
            "ce-dataschema": {"type": "string", "format": "uri"},
            "ce-jobid": {
                "type": "string",
                "description": "Extension attribute: the job id, for filtering without parsing.",
            },
            "ce-traceparent": {
                "type": "string",
                "description": "W3C trace context (CloudEvents distributed tracing extension).",
            },
            "content-type": {"const": "application/json"},
        },
    }


def asyncapi_document(topology: Topology, cat: Catalog | None = None) -> dict[str, Any]:
    cat = cat or catalog()
    try:
        version = metadata.version("speakerline")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    messages: dict[str, Any] = {}
    for schema in cat:
        key = f"{schema.name}.v{schema.major}"
        payload = {k: v for k, v in _as_written(schema).items() if k != "$schema"}
        message: dict[str, Any] = {
            "name": schema.type,
            "title": schema.type,
            "summary": schema.description,
            "contentType": "application/json",
            "headers": _headers_schema(schema.type),
            "payload": {"schemaFormat": "application/schema+json;version=draft-2020-12", "schema": payload},
        }
        example = _example(schema.name, schema.major)
        if example is not None:
            headers = {f"ce-{k}": v for k, v in example.items() if k not in ("data", "datacontenttype")}
            headers["content-type"] = example.get("datacontenttype", "application/json")
            message["examples"] = [{"name": "example", "headers": headers, "payload": example["data"]}]
        messages[key] = message

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in topology.topics.values():
        refs = {
            f"{cat.by_type[t].name}.v{cat.by_type[t].major}": {
                "$ref": f"#/components/messages/{cat.by_type[t].name}.v{cat.by_type[t].major}"
            }
            for t in topic.event_types
        }
        if not refs:
            continue  # raw GCS notifications: not part of the event contract
        channels[topic.name] = {
            "address": topic.name,
            "description": topic.description
            + " Consumers must acknowledge and ignore event types they do not handle, and tolerate any order.",
            "messages": refs,
            "bindings": {"googlepubsub": {"messageRetentionDuration": "604800s"}},
        }
        # The one topic producers publish to (audio.uploaded); every other topic is speakerline's output.
        producer_facing = AudioUploaded.TYPE in topic.event_types
        operations[f"{'receive' if producer_facing else 'send'}-{topic.name}"] = {
            "action": "receive" if producer_facing else "send",
            "channel": {"$ref": f"#/channels/{topic.name}"},
            "summary": (
                "Producers publish here; speakerline receives."
                if producer_facing
                else "speakerline publishes here; subscribe with your own subscription (with a dead-letter policy)."
            ),
            "messages": [{"$ref": f"#/channels/{topic.name}/messages/{k}"} for k in refs],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "speakerline events",
            "version": version,
            "description": (
                "Every message is a CloudEvent (specversion 1.0) in the binary content mode of the CloudEvents "
                "Google Cloud Pub/Sub binding: ce-* message attributes, JSON data as the message body. The type "
                "ends with the major version (io.speakerline.<name>.v<major>); a major version only gains optional "
                "fields, so ignore fields you do not know. Generated from schemas/ and infra/topology.yaml: "
                "do not edit by hand (speakerline schemas asyncapi)."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": {
                "host": "pubsub.googleapis.com",
                "protocol": "googlepubsub",
                "description": "Topics live in the deployment's project: projects/<project>/topics/<channel address>.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render_asyncapi(topology: Topology) -> str:
    return yaml.safe_dump(asyncapi_document(topology), sort_keys=False, allow_unicode=True, width=110)
