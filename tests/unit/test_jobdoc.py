from datetime import UTC, datetime

from projector.projection import project
from speakerline import events, jobdoc
from speakerline.jobpaths import RESULT_FORMATS
from speakerline_tools import jobstore
from tests.conftest import example_data

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def completed() -> dict[str, object]:
    return {
        "job_id": "job_0123456789",
        "status": "COMPLETED",
        "request": {"input": {"uri": "gs://u/api/job_0123456789/a.wav", "filename": "a.wav"}, "producer": "acme"},
        "stages": {"received_at": AT, "completed_at": AT},
        "result": {"output_uri": "gs://r/results/job_0123456789/output.json", "vtt_uri": "gs://r/x.vtt"},
        "event_count": 4,
    }


def test_the_input_request_and_result_of_a_document() -> None:
    doc = completed()
    assert jobdoc.input_of(doc)["filename"] == "a.wav"
    assert jobdoc.request_of(doc)["producer"] == "acme"
    assert jobdoc.result_uri(doc, "json") == "gs://r/results/job_0123456789/output.json"
    assert jobdoc.result_uri(doc, "rttm") is None
    assert jobdoc.result_formats(doc) == ["json", "vtt"]
    assert jobdoc.version(doc) == 4


def test_an_empty_or_missing_document_reads_as_nothing() -> None:
    for doc in (None, {}, {"request": None, "result": "?"}):
        assert jobdoc.input_of(doc) == {}
        assert jobdoc.result_of(doc) is None
        assert jobdoc.result_formats(doc) == []
        assert jobdoc.version(doc) == 0


def test_every_result_format_is_read_from_the_field_the_projector_writes() -> None:
    data = example_data("job.completed")
    doc = project(None, events.JobCompleted.new(events.models.JobCompletedV1Data.model_validate(data), source="//t"))
    assert jobdoc.result_formats(doc) == list(RESULT_FORMATS)
    uris = {value for key, value in data["result"].items() if key.endswith("_uri")}
    assert {jobdoc.result_uri(doc, fmt) for fmt in RESULT_FORMATS} == uris


def test_stages_in_pipeline_order_include_the_deletion() -> None:
    doc = {"stages": {"deleted_at": AT, "received_at": AT, "failed_at": None}}
    assert [key for key, _, _ in jobdoc.stages_reached(doc)] == ["received_at", "deleted_at"]


def test_the_cli_shows_a_deleted_jobs_deletion() -> None:
    doc = {**completed(), "status": "DELETED", "stages": {"received_at": AT, "deleted_at": AT}}
    assert "  deleted             2026-01-02 03:04:05Z" in jobstore.format_job_detail(doc).splitlines()


def test_jsonable_turns_datetimes_into_iso_strings_at_any_depth() -> None:
    doc = {"at": AT, "items": [{"at": AT}, 1], "pair": (AT, "x")}
    assert jobdoc.jsonable(doc) == {
        "at": AT.isoformat(),
        "items": [{"at": AT.isoformat()}, 1],
        "pair": [AT.isoformat(), "x"],
    }


def test_terminal_states() -> None:
    assert all(jobdoc.is_terminal(s) for s in ("COMPLETED", "REJECTED", "FAILED", "DELETED"))
    assert not any(jobdoc.is_terminal(s) for s in ("PENDING", "RECEIVED", "DIARIZING"))
