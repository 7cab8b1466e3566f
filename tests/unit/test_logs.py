"""Log lines are JSON objects Cloud Logging understands, with the job and event bound."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from speakerline import events, logs


@pytest.fixture(autouse=True)
def _default_structlog_afterwards() -> Iterator[None]:
    # configure() binds the stream it finds (here capsys' stand-in, closed after the test): later tests log elsewhere.
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_json_lines_with_severity_trace_and_job(capsys, example) -> None:  # type: ignore[no-untyped-def]
    logs.configure("ingest", level="INFO", project="proj-1")
    data = events.models.AudioUploadedV1Data.model_validate(example("audio.uploaded"))
    event = events.AudioUploaded.new(data, source="//t")
    log = logs.get_logger()
    with logs.bind_event(event):
        log.info("handling", size=3)
        log.error("went wrong")
    log.info("after")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    handling, wrong, after = lines[-3:]
    assert handling["message"] == "handling" and handling["severity"] == "INFO" and handling["size"] == 3
    assert wrong["severity"] == "ERROR"
    trace_id, span_id = events.trace_ids(event.to_cloudevent()) or ("", "")
    for line in (handling, wrong):
        assert line["job_id"] == example("audio.uploaded")["job_id"]
        assert line["event_id"] == event.id and line["event_type"] == event.TYPE
        assert line["service"] == "ingest"
        assert line["logging.googleapis.com/trace"] == f"projects/proj-1/traces/{trace_id}"
        assert line["logging.googleapis.com/spanId"] == span_id
        assert "time" in line
    assert "job_id" not in after and after["service"] == "ingest"
