"""`speakerline submit FILE [--wait]`: upload an audio file (its upload starts a job) and optionally follow the job
to its end (`speakerline_tools.client`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from speakerline_tools.cli import common
from speakerline_tools.cli.common import EXIT_JOB_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_submit = subparsers.add_parser("submit", help="upload an audio file; its upload starts a job")
    p_submit.add_argument("file")
    p_submit.add_argument("--num-speakers", type=int)
    p_submit.add_argument("--min-speakers", type=int)
    p_submit.add_argument("--max-speakers", type=int)
    p_submit.add_argument("--webhook", help="URL to POST the signed job outcome to")
    p_submit.add_argument("--correlation-id", help="your own id, echoed in every event of the job")
    p_submit.add_argument("--wait", action="store_true", help="follow the job to its end, then print the timeline")
    p_submit.add_argument("--json", action="store_true", help="print the final job document as JSON")
    p_submit.add_argument("--timeout", type=float, default=900.0, help="seconds --wait waits (default 900)")
    p_submit.set_defaults(func=_submit_command)


def parse(argv: list[str]) -> argparse.Namespace:
    """`speakerline submit` arguments, for commands that submit on the user's behalf (`speakerline demo`)."""
    parser = argparse.ArgumentParser(prog="speakerline")
    add_parser(parser.add_subparsers(dest="cmd", required=True))
    return parser.parse_args(["submit", *argv])


def _submit_command(args: argparse.Namespace) -> int:
    return submit(args)[0]


def submit(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    """Upload, optionally follow the job to its end and report it: (exit code, final job document if waited)."""
    import google.cloud.storage as gcs
    from google.cloud import firestore

    from speakerline_tools import client, jobstore

    common.use_local_stack_if_running()
    project = common.project()
    path = Path(args.file)
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return EXIT_USAGE, None
    try:
        options = client.speaker_options(args.num_speakers, args.min_speakers, args.max_speakers)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE, None
    submission = client.submit(
        gcs.Client(project=project),
        path,
        options=options,
        webhook_url=args.webhook,
        correlation_id=args.correlation_id,
    )
    if not args.wait:
        if args.json:
            common.print_json({"job_id": submission.job_id, "input": submission.uri, "status": "SUBMITTED"})
        else:
            print(submission.job_id)
        return EXIT_OK, None
    # With --json, stdout carries only the final document: progress goes to stderr.
    progress = sys.stderr if args.json else sys.stdout
    print(f"job {submission.job_id}: uploaded {submission.uri}", file=progress)

    def on_status(status: str, job: Mapping[str, Any]) -> None:
        print(f"job {submission.job_id}: {status}", file=progress, flush=True)

    def on_progress(report: Mapping[str, Any]) -> None:
        print(f"job {submission.job_id}: DIARIZING {jobstore.format_progress(report)}", file=progress, flush=True)

    db = firestore.Client(project=project)
    job = client.wait(db, submission.job_id, timeout_s=args.timeout, on_status=on_status, on_progress=on_progress)
    return _report_job(job, submission.job_id, args.json)


def _report_job(job: dict[str, Any] | None, job_id: str, as_json: bool) -> tuple[int, dict[str, Any]]:
    from speakerline.jobs import JobStatus
    from speakerline_tools import client, jobstore

    doc = common.final_document(job, job_id)
    status = str(doc.get("status"))
    if as_json:
        common.print_json(doc)
    elif status == "COMPLETED":
        print(jobstore.format_job_detail(doc))
        print()
        print(client.format_timeline(client.turns(doc["result"]["segments"])))
    else:
        print(jobstore.format_job_detail(doc) if job else f"job {job_id}: not found")
    if status in (JobStatus.REJECTED, JobStatus.FAILED):
        return EXIT_JOB_FAILED, doc
    return (EXIT_OK if status == JobStatus.COMPLETED else EXIT_TIMEOUT), doc
