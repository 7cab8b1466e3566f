"""Bad input against the real stack: every case gets a reason code and a human message, nothing crashes, nothing is
redelivered without end, no job is lost, and the stack is healthy afterwards.

Three ways in, one test module each: the uploads bucket (test_bad_uploads.py), broken CloudEvents on every topic
(test_bad_events.py), the HTTP API (test_bad_requests.py). Each records its cases here; the `bad_input_report`
fixture (conftest.py) writes every case tried so far as a markdown table to `.stack/bad-input-report.md` (for
docs/operations.md, "Bad input") after each of those modules.

The size and duration limit cases need the stack's limits lowered (a file over 4 GiB or 24 h is no test fixture):
`SPEAKERLINE_MAX_UPLOAD_BYTES` and `SPEAKERLINE_MAX_DURATION_S` in the pipeline fixture's `service_env` (or this
process's environment, which the stack passes on); the files are built just over whatever is configured.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from speakerline_tools import stack

REPO = Path(__file__).resolve().parents[2]
SPEECH = REPO / "tests" / "data" / "sample" / "conversation.flac"
SCHEMAS = REPO / "schemas" / "events"
REPORT = REPO / ".stack" / "bad-input-report.md"
MIB = 1024 * 1024
#: What the stack's limits must be lowered to for the limit cases to be cheap (the lead sets them in service_env).
LIMIT_ENV = {"SPEAKERLINE_MAX_UPLOAD_BYTES": str(8 * MIB), "SPEAKERLINE_MAX_DURATION_S": "600"}
JOB_TIMEOUT_S = 300.0
DEAD_LETTER_TIMEOUT_S = 90.0

TEXT = b"Minutes of the Monday meeting: budget, hiring, the new office.\n" * 20


@dataclasses.dataclass
class Row:
    case: str
    path: str  # the way in: bucket, topic, API route
    expected: str
    observed: str = "(not observed)"
    shown: str = ""  # what the user sees
    answered: bool = False  # a reason code, or the expected completion
    lost: bool = False  # a job that never reached a terminal state


ROWS: dict[str, Row] = {}


def record(row: Row) -> Row:
    ROWS[row.case] = row
    return row


def cell(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_report() -> None:
    """The table of every case tried, whatever the tests' verdicts."""
    rows = list(ROWS.values())
    lines = [
        "| case | path in | expected | outcome (status + reason code) | what the user sees |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {r.case} | {cell(r.path)} | {cell(r.expected)} | {cell(r.observed)} | {cell(r.shown)} |" for r in rows),
        "",
        f"Cases tried: {len(rows)}; answered with a reason code or the expected completion: "
        f"{sum(r.answered for r in rows)}; jobs lost: {sum(r.lost for r in rows)}.",
    ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")


def healthy(cfg: stack.StackConfig) -> None:
    unhealthy = [s.name for s in stack.status(cfg) if s.kind == "service" and not s.healthy]
    assert not unhealthy, f"services down after bad input: {unhealthy}"


def outcome(job: dict[str, Any] | None) -> tuple[str, str]:
    """(status + reason code, what the user sees) of a job document."""
    if job is None:
        return "no job", "nothing"
    error = job.get("error") or {}
    if job["status"] == "COMPLETED":
        summary = (job.get("result") or {}).get("summary") or {}
        return "COMPLETED", f"{summary.get('num_speakers')} speaker(s), {summary.get('num_segments')} segment(s)"
    return f"{job['status']} {error.get('code', '')}".strip(), str(error.get("message", ""))
