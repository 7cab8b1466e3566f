"""Reading the spans the services wrote (`speakerline.telemetry`'s local JSON lines): one job's trace as a
waterfall (`speakerline jobs trace ID`), and the queue wait of every hop (`make bench`).

Each line of `<dir>/traces/<service>.jsonl` is one finished span as the OpenTelemetry SDK serializes it
(`ReadableSpan.to_json`). A delivery's span is a CONSUMER span: its start minus `speakerline.published_at` is the
time the message waited on its subscription, its duration the time the handler took.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

QUEUE_WAIT = "speakerline.queue_wait_s"
JOB_ID = "speakerline.job_id"


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: str
    start: float  # Unix seconds
    end: float
    status: str
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    @property
    def queue_wait_s(self) -> float | None:
        value = self.attributes.get(QUEUE_WAIT)
        return float(value) if value is not None else None

    @property
    def stage(self) -> str:
        """The subscription a delivery came through, else the span's name (an API request)."""
        return str(self.attributes.get("messaging.destination.subscription.name") or self.name)

    @property
    def event_type(self) -> str:
        return str(self.attributes.get("cloudevents.event_type") or "")


def _hex(value: Any) -> str | None:
    return str(value).removeprefix("0x") if value else None


def _time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def parse_span(line: str) -> Span:
    doc = json.loads(line)
    resource = (doc.get("resource") or {}).get("attributes") or {}
    return Span(
        trace_id=_hex(doc["context"]["trace_id"]) or "",
        span_id=_hex(doc["context"]["span_id"]) or "",
        parent_id=_hex(doc.get("parent_id")),
        name=str(doc.get("name") or ""),
        service=str(resource.get("service.name") or ""),
        kind=str(doc.get("kind") or "").removeprefix("SpanKind."),
        start=_time(doc["start_time"]),
        end=_time(doc["end_time"]),
        status=str((doc.get("status") or {}).get("status_code") or "UNSET"),
        attributes=doc.get("attributes") or {},
    )


def load_spans(telemetry_dir: Path) -> list[Span]:
    """Every span under `<telemetry_dir>/traces/`; a line cut short by a killed process is skipped."""
    spans = []
    for file in sorted((telemetry_dir / "traces").glob("*.jsonl")):
        for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                spans.append(parse_span(line))
            except (ValueError, KeyError, TypeError):
                continue
    return spans


def job_traces(spans: Iterable[Span], job_id: str) -> dict[str, list[Span]]:
    """The traces that touch job `job_id` (normally one), each with all its spans in start order."""
    spans = list(spans)
    trace_ids = {s.trace_id for s in spans if s.attributes.get(JOB_ID) == job_id}
    found: dict[str, list[Span]] = {}
    for span in sorted(spans, key=lambda s: s.start):
        if span.trace_id in trace_ids:
            found.setdefault(span.trace_id, []).append(span)
    return found


@dataclass(frozen=True)
class StageTotal:
    stage: str
    service: str
    deliveries: int
    queue_wait_s: float
    handling_s: float


def stage_totals(spans: Sequence[Span]) -> list[StageTotal]:
    """Per stage (subscription) in order of first appearance: deliveries, total queue wait, total handling."""
    totals: dict[tuple[str, str], list[float]] = {}
    for span in sorted(spans, key=lambda s: s.start):
        row = totals.setdefault((span.stage, span.service), [0, 0.0, 0.0])
        row[0] += 1
        row[1] += span.queue_wait_s or 0.0
        row[2] += span.duration_s
    return [
        StageTotal(stage, service, int(n), wait, handling) for (stage, service), (n, wait, handling) in totals.items()
    ]


def _bar(waiting: float, start: float, end: float, origin: float, total: float, width: int) -> str:
    """░ while the message waited, █ while it was handled, on a `width`-column scale of the trace."""

    def column(t: float) -> int:
        return min(width, int((t - origin) / total * width)) if total > 0 else 0

    a, b = column(waiting), column(start)
    handled = max(1, column(end) - b)
    return (" " * a + "░" * (b - a) + "█" * handled)[:width]


def render_waterfall(spans: Sequence[Span], width: int = 40) -> str:
    """One line per span, in start order: offset from the trace's start, service, stage, event type, queue wait
    before it (░ on the bar) and handling time (█); then the totals per stage."""
    spans = sorted(spans, key=lambda s: s.start)
    origin = min(s.start - (s.queue_wait_s or 0.0) for s in spans)
    end = max(s.end for s in spans)
    total = end - origin
    lines = [
        f"trace {spans[0].trace_id}: {len(spans)} spans over {total:.2f} s",
        f"{'at':>8} {'service':13} {'stage':28} {'event':24} {'wait':>9} {'handle':>9}  timeline",
    ]
    for span in spans:
        bar = _bar(span.start - (span.queue_wait_s or 0.0), span.start, span.end, origin, total, width)
        flag = "" if span.status != "ERROR" else "  ERROR"
        lines.append(
            f"{span.start - origin:7.2f}s {span.service[:13]:13} {span.stage[:28]:28} "
            f"{span.event_type.removeprefix('io.speakerline.')[:24]:24} {_ms(span.queue_wait_s):>9} "
            f"{_ms(span.duration_s):>9}  |{bar:<{width}}|{flag}"
        )
    lines.append("")
    lines.append(f"{'stage':28} {'service':13} {'deliveries':>10} {'queue wait':>11} {'handling':>10}")
    for row in stage_totals(spans):
        lines.append(
            f"{row.stage[:28]:28} {row.service[:13]:13} {row.deliveries:>10} {_ms(row.queue_wait_s):>11} "
            f"{_ms(row.handling_s):>10}"
        )
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]


def hop_latencies(telemetry_dir: Path, since: float = 0.0) -> dict[str, Any]:
    """Queue wait (publish → handler start) per hop (subscription), in ms: p50, p95 and the count, over every
    delivery span that started after `since`; "all" pools every hop."""
    waits: dict[str, list[float]] = {}
    for span in load_spans(telemetry_dir):
        if span.start >= since and span.queue_wait_s is not None:
            waits.setdefault(span.stage, []).append(span.queue_wait_s * 1000)
    pooled = [w for values in waits.values() for w in values]
    result: dict[str, Any] = {}
    for hop, values in sorted({**waits, "all": pooled}.items()):
        if values:
            result[hop] = {
                "p50": round(_percentile(values, 50), 1),
                "p95": round(_percentile(values, 95), 1),
                "events": len(values),
            }
    return result
