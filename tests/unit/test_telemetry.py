"""Spans of the runtime (`speakerline.telemetry`) and how `speakerline_tools.traces` reads them back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from speakerline import events, runtime, topology
from speakerline.events import wire
from speakerline_tools import traces
from tests.fakes import RecordingPublisher

EXAMPLE = Path("schemas/events/diarization.completed/v1.example.json")


@pytest.fixture(scope="module")
def recorded() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider (set once per process: an SDK one is reused) with an in-memory exporter."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def _postprocess(handler: runtime.Handler, publisher: RecordingPublisher) -> tuple[runtime.ServiceDef, Any]:
    topo = topology.load()
    sub = topo.subscriptions_of("postprocess")[0]
    route = runtime.Route(handler, accepts=(events.DiarizationCompleted,))
    return runtime.ServiceDef("postprocess", {sub.handler: route}, publisher, topo), sub


def _failed_job(event: events.AnyEvent) -> events.JobFailed:
    data = events.models.JobFailedV1Data(
        job_id=event.data.job_id, error=events.job_error("postprocess", "x", "m", retriable=True)
    )
    return events.JobFailed.caused_by(event, data, source="//t")


def test_a_delivery_is_a_consumer_span_continuing_the_event_and_parenting_what_it_emits(
    recorded: InMemorySpanExporter,
) -> None:
    recorded.clear()
    publisher = RecordingPublisher()
    service, sub = _postprocess(lambda event, context: [_failed_job(event)], publisher)
    cause = events.parse_json(EXAMPLE.read_bytes())
    cause = type(cause)(**{**cause.__dict__, "traceparent": wire.new_traceparent()})
    body, attributes = events.to_pubsub(cause)
    published_at = time.time() - 2.5

    outcome = runtime.process(service, sub, runtime.Delivery(body, attributes, "m1", 3, published_at=published_at))

    assert outcome is runtime.Outcome.ACK
    (span,) = recorded.get_finished_spans()
    trace_id, parent_span_id = wire.trace_ids_of(cause.traceparent)  # type: ignore[misc]
    context = span.get_span_context()
    assert span.kind is trace.SpanKind.CONSUMER and span.name == f"process {sub.name}"
    assert f"{context.trace_id:032x}" == trace_id and span.parent is not None
    assert f"{span.parent.span_id:016x}" == parent_span_id
    attributes_seen = dict(span.attributes or {})
    assert attributes_seen["messaging.system"] == "gcp_pubsub"
    assert attributes_seen["messaging.destination.name"] == sub.topic
    assert attributes_seen["messaging.destination.subscription.name"] == sub.name
    assert attributes_seen["messaging.message.id"] == "m1"
    assert attributes_seen["messaging.gcp_pubsub.message.delivery_attempt"] == 3
    assert attributes_seen["cloudevents.event_id"] == cause.id
    assert attributes_seen["cloudevents.event_type"] == events.DiarizationCompleted.TYPE
    assert attributes_seen["speakerline.job_id"] == cause.job_id
    assert 2.4 < float(attributes_seen["speakerline.queue_wait_s"]) < 10  # type: ignore[arg-type]
    # The emitted event is the span's child: same trace, the span's own id as parent.
    (emitted,) = publisher.events
    assert wire.trace_ids(emitted) == (trace_id, f"{context.span_id:016x}")


def test_a_failing_handler_marks_its_span_as_an_error_and_a_refused_message_says_why(
    recorded: InMemorySpanExporter,
) -> None:
    recorded.clear()

    def failing(event: Any, context: runtime.Context) -> list[events.Event[Any]]:
        raise RuntimeError("boom")

    service, sub = _postprocess(failing, RecordingPublisher())
    body, attributes = events.to_pubsub(events.parse_json(EXAMPLE.read_bytes()))
    assert runtime.process(service, sub, runtime.Delivery(body, attributes, "m2", 1)) is runtime.Outcome.NACK
    assert runtime.process(service, sub, runtime.Delivery(b"not json", {}, "m3", 1)) is runtime.Outcome.DEAD_LETTER
    failed, refused = recorded.get_finished_spans()
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert any(e.name == "exception" and "boom" in str(e.attributes) for e in failed.events)
    assert refused.status.status_code is trace.StatusCode.ERROR
    assert (refused.attributes or {})["speakerline.dead_letter.reason"] == "not_a_cloudevent"
    assert (refused.attributes or {})["speakerline.outcome"] == "dead_letter"


def test_outside_a_recorded_span_an_event_keeps_its_causes_trace() -> None:
    cause = events.parse_json(EXAMPLE.read_bytes())
    cause = type(cause)(**{**cause.__dict__, "traceparent": wire.new_traceparent()})
    made = _failed_job(cause)
    assert wire.trace_ids_of(made.traceparent)[0] == wire.trace_ids_of(cause.traceparent)[0]  # type: ignore[index]
    assert made.traceparent != cause.traceparent


def _written(spans: list[ReadableSpan], folder: Path, service: str) -> None:
    (folder / "traces").mkdir(parents=True, exist_ok=True)
    with (folder / "traces" / f"{service}.jsonl").open("a") as out:
        for span in spans:
            out.write(span.to_json(indent=None) + "\n")
        out.write('{"name": "cut short by a SIGKILL"\n')


def test_a_job_trace_is_read_back_as_a_waterfall_with_wait_and_handling_per_stage(
    recorded: InMemorySpanExporter, tmp_path: Path
) -> None:
    recorded.clear()
    publisher = RecordingPublisher()
    service, sub = _postprocess(lambda event, context: [_failed_job(event)], publisher)
    cause = events.parse_json(EXAMPLE.read_bytes())
    body, attributes = events.to_pubsub(cause)
    for n, wait in enumerate((0.050, 0.200, 0.100)):
        delivery = runtime.Delivery(body, attributes, f"m{n}", 1, published_at=time.time() - wait)
        runtime.process(service, sub, delivery)
    _written(list(recorded.get_finished_spans()), tmp_path, "postprocess")

    spans = traces.load_spans(tmp_path)
    assert len(spans) == 3  # the line cut short is skipped
    found = traces.job_traces(spans, str(cause.job_id))
    assert sum(len(v) for v in found.values()) == 3
    assert traces.job_traces(spans, "job_someone_else") == {}
    (total,) = traces.stage_totals(spans)
    assert total.stage == sub.name and total.deliveries == 3 and 0.34 < total.queue_wait_s < 1.0
    printed = traces.render_waterfall(spans)
    assert printed.count(sub.name) == 4 and "░" in printed and "█" in printed  # 3 spans + the stage total

    hops = traces.hop_latencies(tmp_path)
    assert hops[sub.name]["events"] == 3 and hops["all"]["events"] == 3
    assert 90 <= hops[sub.name]["p50"] <= 400 and hops[sub.name]["p95"] >= hops[sub.name]["p50"]
    assert traces.hop_latencies(tmp_path, since=time.time() + 60) == {}
