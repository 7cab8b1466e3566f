"""One job through the whole stack is one trace: every service's span, in pipeline order, each the child of the
span that published its event, and `speakerline jobs trace` prints it (docs/operations.md, "Tracing a job")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from speakerline_tools import stack, traces

from ..integration.helpers import wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample" / "conversation.flac"
PIPELINE = ("ingest", "diarization", "postprocess", "notification")


def _speakerline(cfg: stack.StackConfig, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cfg.emulator_env()}
    binary = str(Path(sys.executable).with_name("speakerline"))
    return subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=600)


def test_one_job_is_one_trace_across_every_service(pipeline: stack.StackConfig, webhook_receiver) -> None:  # type: ignore[no-untyped-def]
    done = _speakerline(pipeline, "submit", str(SAMPLE), "--wait", "--json", "--webhook", webhook_receiver.url("/t"))
    assert done.returncode == 0, done.stderr[-3000:]
    job_id = json.loads(done.stdout)["job_id"]

    def whole_trace() -> list[traces.Span] | None:
        found = traces.job_traces(traces.load_spans(pipeline.root), job_id)
        spans = next(iter(found.values()), [])
        projected = {s.event_type for s in spans if s.service == "projector"}
        return spans if "io.speakerline.notification.delivered.v1" in projected else None

    spans = wait_for(whole_trace, timeout_s=60)
    found = traces.job_traces(traces.load_spans(pipeline.root), job_id)
    assert len(found) == 1, f"the job is in {len(found)} traces"

    # Every service took part, the pipeline's in order of their first span, and the projector saw every event.
    services = {s.service for s in spans}
    assert services >= {*PIPELINE, "projector"}, services
    first = [min(s.start for s in spans if s.service == name) for name in PIPELINE]
    assert first == sorted(first), dict(zip(PIPELINE, first, strict=True))
    consumers = [s for s in spans if s.kind == "CONSUMER"]
    assert {s.event_type for s in consumers if s.service == "projector"} >= {
        f"io.speakerline.{name}.v1"
        for name in (
            "audio.uploaded",
            "audio.ingested",
            "diarization.started",
            "diarization.completed",
            "job.completed",
            "notification.delivered",
        )
    }

    # One tree: a single root (ingest, handling the upload's notification), every other span the child of a span
    # in the trace: the one that published the event it handled.
    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if s.parent_id is None]
    assert len(roots) == 1 and roots[0].service == "ingest", [(r.service, r.name) for r in roots]
    assert all(s.parent_id in by_id for s in spans if s is not roots[0])
    postprocess = next(s for s in consumers if s.service == "postprocess")
    assert by_id[str(postprocess.parent_id)].service == "diarization"

    # Messaging and CloudEvents semantic conventions on every delivery span; the queue wait is measured.
    for span in consumers:
        attributes = span.attributes
        assert attributes["messaging.system"] == "gcp_pubsub"
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.destination.name"] and attributes["messaging.message.id"]
        assert attributes["speakerline.job_id"] == job_id
        assert 0 <= span.queue_wait_s < 60 and span.duration_s >= 0  # type: ignore[operator]
        assert attributes["cloudevents.event_id"] and attributes["cloudevents.event_type"]

    # Log lines inside a span carry its trace and span ids (Cloud Logging correlation).
    diarization = next(s for s in consumers if s.service == "diarization")
    logged = [
        json.loads(line)
        for line in (pipeline.logs / "diarization.log").read_text().splitlines()
        if line.startswith("{") and job_id in line
    ]
    assert any(
        line.get("logging.googleapis.com/trace", "").endswith(diarization.trace_id)
        and line.get("logging.googleapis.com/spanId") == diarization.span_id
        for line in logged
    )

    # The waterfall: one line per span, then queue wait and handling per stage.
    printed = _speakerline(pipeline, "jobs", "trace", job_id, "--dir", str(pipeline.root))
    assert printed.returncode == 0, printed.stderr
    assert f"trace {spans[0].trace_id}" in printed.stdout
    for span in consumers:
        assert span.stage in printed.stdout
    assert "queue wait" in printed.stdout and "handling" in printed.stdout
    missing = _speakerline(pipeline, "jobs", "trace", "job_not_there_at_all", "--dir", str(pipeline.root))
    assert missing.returncode == 1 and "no spans" in missing.stderr
