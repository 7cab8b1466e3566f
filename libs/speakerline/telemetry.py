"""OpenTelemetry for every service: one trace per job across the services, and the pipeline's metrics.

Tracing. The runtime handles every message inside a CONSUMER span (`consuming`) whose parent is the `traceparent`
of the event it carries (the CloudEvents distributed-tracing extension), with the messaging semantic conventions
(`messaging.system=gcp_pubsub`, destination, subscription, message id) and the CloudEvent's id and type. Every event
a handler emits is stamped with that span's context (`current_traceparent`, read by `Event.new`), so the next
service's span is its child: a job is one trace, from the upload's notification (the root: GCS does not send a
trace) to the webhook and the projector's last write. Log lines inside a span carry its trace and span ids
(`logs.bind_event`), which is how Cloud Logging puts them under the trace.

Exporters, by configuration (`configure`; several may be on at once):

- `SPEAKERLINE_TELEMETRY=gcp`: Cloud Trace and Cloud Monitoring (what the Terraform deployment sets);
- `OTEL_EXPORTER_OTLP_ENDPOINT` (or the `_TRACES_`/`_METRICS_` variants): OTLP over HTTP to a collector;
- `SPEAKERLINE_TELEMETRY_DIR`: JSON lines on local disk, `<dir>/traces/<service>.jsonl` (one finished span a line,
  written at once, so a SIGKILLed worker loses none) and `<dir>/metrics/<service>.jsonl` (every 10 s); the local
  stack sets it to `.stack/`, and `speakerline jobs trace ID` reads it.

Without any of them the OpenTelemetry API stays a no-op: nothing is recorded (unit tests, a library user).

Metrics (instrument names are the contract of the dashboards and alerts): `speakerline.handler.duration` and
`speakerline.queue.wait` (s, per subscription and outcome), `speakerline.dead_letters` (per subscription and reason),
`speakerline.jobs.finished` (per terminal status and reason code), `speakerline.engine.rtf` (per engine and
device). The oldest unacknowledged message per subscription is Pub/Sub's own metric
(`subscription/oldest_unacked_message_age`), alerted on in infra/terraform/monitoring.tf.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from speakerline.events import Event
from speakerline.events.wire import current_traceparent

NAME = "speakerline"
METRICS_INTERVAL_MS = 10_000
CLOUD_METRICS_INTERVAL_MS = 60_000  # Cloud Monitoring takes at most one point per series every 10 s; 60 s is cheap

_propagator = TraceContextTextMapPropagator()
__all__ = ["configure", "consuming", "current_traceparent", "engine_rtf", "job_finished", "shutdown"]
_configured: dict[str, Any] = {}
_lock = threading.Lock()


def _otlp_wanted(signal: str) -> bool:
    names = ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    return any(os.environ.get(name) for name in names)


def _jsonl(folder: Path, service: str) -> IO[str]:
    folder.mkdir(parents=True, exist_ok=True)
    # line-buffered append: every span is on disk when it ends, and a restarted service goes on in the same file
    return (folder / f"{service}.jsonl").open("a", buffering=1, encoding="utf-8")


def configure(
    service: str, *, exporters: str = "", directory: Path | None = None, project: str = "", instance: str = ""
) -> None:
    """Set this process's tracer and meter providers once (a second call is ignored). `exporters`: "gcp" for Cloud
    Trace and Cloud Monitoring; `directory`: local JSON lines; OTLP when its standard variables are set."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    with _lock:
        if _configured:
            return
        wanted = {name.strip() for name in exporters.split(",") if name.strip()}
        resource = Resource.create(
            {"service.name": service, "service.namespace": NAME, "service.instance.id": instance or str(os.getpid())}
        )
        tracer_provider = TracerProvider(resource=resource)
        readers: list[MetricReader] = []
        if directory is not None:
            spans_out = _jsonl(directory / "traces", service)
            tracer_provider.add_span_processor(
                SimpleSpanProcessor(
                    ConsoleSpanExporter(out=spans_out, formatter=lambda span: span.to_json(indent=None) + "\n")
                )
            )
            metrics_out = _jsonl(directory / "metrics", service)
            readers.append(
                PeriodicExportingMetricReader(
                    ConsoleMetricExporter(out=metrics_out, formatter=lambda data: data.to_json(indent=None) + "\n"),
                    export_interval_millis=METRICS_INTERVAL_MS,
                )
            )
        if _otlp_wanted("TRACES"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if _otlp_wanted("METRICS"):
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        if "gcp" in wanted:
            from opentelemetry.exporter.cloud_monitoring import CloudMonitoringMetricsExporter
            from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

            tracer_provider.add_span_processor(
                BatchSpanProcessor(CloudTraceSpanExporter(project_id=project or None))  # type: ignore[no-untyped-call]
            )
            readers.append(
                PeriodicExportingMetricReader(
                    # one series per instance: Cloud Run runs several instances of a service at once
                    CloudMonitoringMetricsExporter(project_id=project or None, add_unique_identifier=True),
                    export_interval_millis=CLOUD_METRICS_INTERVAL_MS,
                )
            )
        trace.set_tracer_provider(tracer_provider)
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        metrics.set_meter_provider(meter_provider)
        _configured.update(tracer_provider=tracer_provider, meter_provider=meter_provider)


def shutdown() -> None:
    """Flush what is buffered (a worker shutting down on SIGTERM; Cloud Run gives it 10 s)."""
    for provider in (_configured.get("tracer_provider"), _configured.get("meter_provider")):
        if provider is not None:
            provider.shutdown()


# --- traces ----------------------------------------------------------------------------------------------------


def _parent(traceparent: str | None) -> Any:
    return _propagator.extract({"traceparent": traceparent}) if traceparent else None


@contextmanager
def consuming(
    *,
    subscription: str,
    topic: str,
    message_id: str,
    traceparent: str | None,
    published_at: float | None,
    attempt: int | None,
    started: float,
) -> Iterator[trace.Span]:
    """The CONSUMER span of one delivery (OpenTelemetry messaging conventions, "process" operation), a child of
    the span that published the message. `published_at` (Pub/Sub's publish time, Unix seconds) gives the queue
    wait: the span's start (`started`, when the message arrived) minus it."""
    attributes: dict[str, Any] = {
        "messaging.system": "gcp_pubsub",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": topic,
        "messaging.destination.subscription.name": subscription,
        "messaging.message.id": message_id,
    }
    if attempt is not None:
        attributes["messaging.gcp_pubsub.message.delivery_attempt"] = attempt
    if published_at is not None:
        wait_s = max(0.0, started - published_at)
        attributes.update({"speakerline.published_at": published_at, "speakerline.queue_wait_s": round(wait_s, 6)})
        _instruments().queue_wait.record(wait_s, {"subscription": subscription})
    tracer = trace.get_tracer(NAME)
    with tracer.start_as_current_span(
        f"process {subscription}",
        context=_parent(traceparent),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        start_time=int(started * 1e9),
        record_exception=True,
    ) as span:
        yield span


def describe_event(span: trace.Span, event: Event[Any]) -> None:
    """The CloudEvent's attributes on its consumer span (CloudEvents semantic conventions) and the job id."""
    span.set_attributes(
        {
            "cloudevents.event_id": event.id,
            "cloudevents.event_type": event.TYPE,
            "cloudevents.event_source": event.source,
            "cloudevents.event_spec_version": "1.0",
        }
    )
    if event.subject:
        span.set_attribute("cloudevents.event_subject", event.subject)
    if event.job_id:
        span.set_attribute("speakerline.job_id", event.job_id)


def settle(span: trace.Span, subscription: str, outcome: str, started: float, reason: str = "") -> None:
    """Record how a delivery ended, on its span and in the handler-duration histogram."""
    span.set_attribute("speakerline.outcome", outcome)
    if outcome == "nack":
        span.set_status(Status(StatusCode.ERROR, "handler failed; redelivered"))
    elif outcome == "dead_letter":
        span.set_status(Status(StatusCode.ERROR, f"dead-lettered: {reason}"))
        span.set_attribute("speakerline.dead_letter.reason", reason)
        _instruments().dead_letters.add(1, {"subscription": subscription, "reason": reason})
    _instruments().handler_duration.record(time.time() - started, {"subscription": subscription, "outcome": outcome})


def note_job(job_id: str | None) -> None:
    """Name the job on the current span when the event handled did not (an upload's notification: its job id is
    derived by the handler), so that a search by job id finds the trace's root too."""
    span = trace.get_current_span()
    if job_id and span.is_recording() and "speakerline.job_id" not in (getattr(span, "attributes", None) or {}):
        span.set_attribute("speakerline.job_id", job_id)


def failed(error: BaseException) -> None:
    """Record a handler's exception on the current span (the delivery is then redelivered)."""
    trace.get_current_span().record_exception(error)


# --- metrics ---------------------------------------------------------------------------------------------------


class _Instruments:
    def __init__(self, meter: metrics.Meter) -> None:
        self.handler_duration = meter.create_histogram(
            "speakerline.handler.duration", unit="s", description="time a handler took per delivery"
        )
        self.queue_wait = meter.create_histogram(
            "speakerline.queue.wait", unit="s", description="publish to handler start, per subscription"
        )
        self.dead_letters = meter.create_counter(
            "speakerline.dead_letters", description="messages dead-lettered by the runtime, by reason"
        )
        self.jobs_finished = meter.create_counter(
            "speakerline.jobs.finished", description="jobs that reached a terminal status, by status and reason code"
        )
        self.engine_rtf = meter.create_histogram(
            "speakerline.engine.rtf", unit="1", description="engine seconds per audio second, by engine and device"
        )


_made: dict[int, _Instruments] = {}


def _instruments() -> _Instruments:
    """The instruments of the current meter provider (made again after `configure` replaces the no-op one)."""
    provider = metrics.get_meter_provider()
    key = id(provider)
    if key not in _made:
        _made.clear()
        _made[key] = _Instruments(provider.get_meter(NAME))
    return _made[key]


def job_finished(status: str, reason_code: str = "") -> None:
    _instruments().jobs_finished.add(1, {"status": status, "reason_code": reason_code or "none"})


def engine_rtf(engine: str, device: str, rtf: float) -> None:
    _instruments().engine_rtf.record(rtf, {"engine": engine, "device": device})
