"""`speakerline jobs get|list|trace`: job state as the projector wrote it to Firestore (`speakerline_tools.jobstore`),
and a job's trace as the services wrote it (`speakerline_tools.traces`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from speakerline_tools.cli import common
from speakerline_tools.cli.common import EXIT_JOB_FAILED, EXIT_OK

if TYPE_CHECKING:
    from google.cloud import firestore


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_jobs = subparsers.add_parser("jobs", help="query job state (Firestore)")
    jobs_sub = p_jobs.add_subparsers(dest="jobs_cmd", required=True)
    p_get = jobs_sub.add_parser("get", help="one job")
    p_get.add_argument("job_id")
    p_get.add_argument("--json", action="store_true")
    p_get.set_defaults(func=_get)
    p_list = jobs_sub.add_parser("list", help="recent jobs, newest first")
    p_list.add_argument("--status", help="RECEIVED, INGESTED, DIARIZING, DIARIZED, COMPLETED, REJECTED, FAILED")
    p_list.add_argument("--limit", type=int, default=20)
    p_list.add_argument("--json", action="store_true")
    p_list.set_defaults(func=_list)
    p_trace = jobs_sub.add_parser(
        "trace",
        help="the job's trace: per stage, time waiting on its subscription and time handling (local stack spans)",
    )
    p_trace.add_argument("job_id")
    p_trace.add_argument(
        "--dir",
        type=Path,
        help="where the services write telemetry (SPEAKERLINE_TELEMETRY_DIR; default: the local stack's folder)",
    )
    p_trace.add_argument("--json", action="store_true", help="the spans as JSON")
    p_trace.set_defaults(func=_trace)


def _firestore() -> firestore.Client:
    from google.cloud import firestore

    common.use_local_stack_if_running()
    return firestore.Client(project=common.project())


def _get(args: argparse.Namespace) -> int:
    from speakerline_tools import jobstore

    job = jobstore.get_job(_firestore(), args.job_id)
    if job is None:
        print(f"job {args.job_id}: not found", file=sys.stderr)
        return EXIT_JOB_FAILED
    if args.json:
        common.print_json(common.final_document(job, args.job_id))
    else:
        print(jobstore.format_job_detail(job))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from speakerline_tools import jobstore

    found = jobstore.list_jobs(_firestore(), args.status, args.limit)
    if args.json:
        common.print_json(found)
    else:
        for job in found:
            print(jobstore.format_job_line(job))
    return EXIT_OK


def _trace(args: argparse.Namespace) -> int:
    from speakerline.settings import Settings
    from speakerline_tools import repo, traces

    folder = args.dir or Settings().telemetry_dir or repo.stack_dir()
    found = traces.job_traces(traces.load_spans(folder), args.job_id)
    if not found:
        print(
            f"job {args.job_id}: no spans under {folder / 'traces'} (in the cloud, open Cloud Trace and filter on "
            f"speakerline.job_id:{args.job_id})",
            file=sys.stderr,
        )
        return EXIT_JOB_FAILED
    if args.json:
        print(json.dumps({t: [dataclasses.asdict(s) for s in spans] for t, spans in found.items()}, indent=2))
    else:
        print("\n\n".join(traces.render_waterfall(spans) for spans in found.values()))
    return EXIT_OK
