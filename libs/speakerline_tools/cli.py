"""`speakerline` command line: the local stack, submitting audio, querying jobs, evaluating an engine."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from speakerline_tools import stack

EXIT_OK, EXIT_JOB_FAILED, EXIT_TIMEOUT, EXIT_USAGE = 0, 1, 2, 64


def _use_local_stack_if_running() -> None:
    """Without emulator settings in the environment, talk to the local stack if one was brought up."""
    if "STORAGE_EMULATOR_HOST" in os.environ or "PUBSUB_EMULATOR_HOST" in os.environ:
        return
    state = _stack_dir() / stack.STATE_FILE
    if state.exists():
        for key, value in stack.StackConfig.load(_stack_dir()).emulator_env().items():
            os.environ.setdefault(key, value)


def _project() -> str:
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        print("GOOGLE_CLOUD_PROJECT is not set (and no local stack is up: `speakerline stack up`)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    return project


def _stack_dir() -> Path:
    override = os.environ.get("SPEAKERLINE_STACK_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2] / ".stack"


def _cmd_stack(args: argparse.Namespace) -> int:
    root = _stack_dir()
    cfg = stack.StackConfig.load(root)
    if args.stack_cmd == "up":
        ports = {}
        if args.base_port:
            ports = {
                "pubsub_port": args.base_port,
                "firestore_port": args.base_port + 1,
                "gcs_port": args.base_port + 2,
            }
        elif (root / stack.STATE_FILE).exists():
            ports = {"pubsub_port": cfg.pubsub_port, "firestore_port": cfg.firestore_port, "gcs_port": cfg.gcs_port}
        cfg = stack.StackConfig(root=root, project=cfg.project, services=not args.no_services, **ports)
        try:
            stack.up(cfg)
        except stack.StackError as exc:
            print(f"stack up failed: {exc}", file=sys.stderr)
            return 1
        print('stack is up. For other shells: eval "$(speakerline stack env)"')
        return 0
    if args.stack_cmd == "provision":
        # For emulators started elsewhere (docker compose): apply the topology to them and create the buckets.
        from speakerline import topology
        from speakerline_tools import provision

        env_project = os.environ.get("GOOGLE_CLOUD_PROJECT", stack.DEFAULT_PROJECT)
        report = provision.apply_pubsub(topology.load(profile="local"), env_project)
        print(f"pubsub topology: {len(report.created)} created, {len(report.existing)} already there")
        from google.cloud import storage as gcs_client

        sreport = provision.apply_storage(topology.load(), gcs_client.Client(project=env_project))
        print(f"buckets: {len(sreport.created)} created, {len(sreport.existing)} already there")
        return 0
    if args.stack_cmd == "down":
        stack.down(cfg)
        return 0
    if args.stack_cmd == "env":
        print("\n".join(stack.env_lines(cfg)))
        return 0
    # status
    rows = stack.status(cfg)
    ok = True
    for row in rows:
        if row.kind == "service" and not cfg.services:
            continue
        ok &= row.healthy
        state = "healthy" if row.healthy else "DOWN"
        print(f"{row.name:<14} {row.kind:<9} {state:<8} pid={row.pid or '-'}")
    emulators_up = all(r.healthy for r in rows if r.name == "pubsub")
    if emulators_up:
        missing = stack.topology_applied(cfg)
        ok &= not missing
        print(f"{'topology':<14} {'pubsub':<9} {'applied' if not missing else 'MISSING: ' + ', '.join(missing)}")
    return 0 if ok else 1


def _cmd_schemas(args: argparse.Namespace) -> int:
    from speakerline import topology
    from speakerline_tools import contracts

    if args.schemas_cmd == "asyncapi":
        contracts.ASYNCAPI_FILE.write_text(contracts.render_asyncapi(topology.load()))
        print(f"wrote {contracts.ASYNCAPI_FILE}")
        return 0
    if args.schemas_cmd == "check":
        problems = contracts.check_against_released()
        for event_type, found in problems.items():
            for problem in found:
                print(f"{event_type}: {problem}", file=sys.stderr)
        stale = contracts.ASYNCAPI_FILE.read_text() != contracts.render_asyncapi(topology.load())
        if stale:
            print("schemas/asyncapi.yaml is stale: run `speakerline schemas asyncapi`", file=sys.stderr)
        return 1 if problems or stale else 0
    try:
        added = contracts.release()
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print("released: " + (", ".join(added) or "nothing new"))
    return 0


def _print_job_json(job: dict[str, object]) -> None:
    import json

    from speakerline_tools import client

    print(json.dumps(client.jsonable(job), indent=2, sort_keys=True))


def _final_document(job: dict[str, object] | None, job_id: str) -> dict[str, object]:
    """The job document as `--json` prints it: segments of a completed job inlined from output.json."""
    import google.cloud.storage as gcs

    from speakerline_tools import client
    from speakerline.storage import GcsBlobStore

    if job is None:
        return {"job_id": job_id, "status": "UNKNOWN"}
    doc = dict(job)
    if doc.get("status") == "COMPLETED":
        result = dict(doc.get("result") or {})  # type: ignore[call-overload]
        result["segments"] = client.segments(GcsBlobStore(gcs.Client(project=_project())), doc)
        doc["result"] = result
    return doc


def _cmd_submit(args: argparse.Namespace) -> int:
    return _submit(args)[0]


def _submit(args: argparse.Namespace) -> tuple[int, dict[str, object] | None]:
    """Upload, optionally follow the job to its end and report it: (exit code, final job document if waited)."""
    import google.cloud.storage as gcs
    from google.cloud import firestore

    from speakerline_tools import jobstore
    from speakerline_tools import client

    _use_local_stack_if_running()
    project = _project()
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
            _print_job_json({"job_id": submission.job_id, "input": submission.uri, "status": "SUBMITTED"})
        else:
            print(submission.job_id)
        return EXIT_OK, None
    progress = sys.stderr if args.json else sys.stdout
    print(f"job {submission.job_id}: uploaded {submission.uri}", file=progress)

    def on_status(status: str, job: object) -> None:
        print(f"job {submission.job_id}: {status}", file=progress, flush=True)

    def on_progress(report: Mapping[str, object]) -> None:
        print(f"job {submission.job_id}: DIARIZING {jobstore.format_progress(report)}", file=progress, flush=True)

    db = firestore.Client(project=project)
    job = client.wait(db, submission.job_id, timeout_s=args.timeout, on_status=on_status, on_progress=on_progress)
    return _report_job(job, submission.job_id, args.json)


def _report_job(job: dict[str, object] | None, job_id: str, as_json: bool) -> tuple[int, dict[str, object]]:
    from speakerline_tools import client
    from speakerline_tools import jobstore as store
    from speakerline.jobs import JobStatus

    doc = _final_document(job, job_id)
    status = str(doc.get("status"))
    if as_json:
        _print_job_json(doc)
    elif status == "COMPLETED":
        print(store.format_job_detail(doc))
        print()
        print(client.format_timeline(client.turns(doc["result"]["segments"])))  # type: ignore[index]
    else:
        print(store.format_job_detail(doc) if job else f"job {job_id}: not found")
    if status in (JobStatus.REJECTED, JobStatus.FAILED):
        return EXIT_JOB_FAILED, doc
    return (EXIT_OK if status == JobStatus.COMPLETED else EXIT_TIMEOUT), doc


def _cmd_jobs(args: argparse.Namespace) -> int:
    from google.cloud import firestore

    from speakerline_tools import jobstore

    _use_local_stack_if_running()
    db = firestore.Client(project=_project())
    if args.jobs_cmd == "get":
        job = jobstore.get_job(db, args.job_id)
        if job is None:
            print(f"job {args.job_id}: not found", file=sys.stderr)
            return EXIT_JOB_FAILED
        if args.json:
            _print_job_json(_final_document(job, args.job_id))
        else:
            print(jobstore.format_job_detail(job))
        return EXIT_OK
    found = jobstore.list_jobs(db, args.status, args.limit)
    if args.json:
        import json

        from speakerline_tools import client

        print(json.dumps(client.jsonable(found), indent=2, sort_keys=True))
    else:
        for job in found:
            print(jobstore.format_job_line(job))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    """Stack up, diarize the bundled sample, compare with its reference annotation, stack down."""
    from speakerline_tools import client
    from speakerline.timeline import parse_rttm

    repo = Path(__file__).resolve().parents[2]
    sample = repo / "tests" / "data" / "sample" / "conversation.flac"
    reference_file = sample.with_suffix(".rttm")
    cfg = stack.StackConfig(root=_stack_dir())
    print("== bringing the local stack up (emulators + services)")
    try:
        stack.up(cfg)
    except stack.StackError as exc:
        print(f"stack up failed: {exc}", file=sys.stderr)
        stack.down(cfg)
        return EXIT_JOB_FAILED
    try:
        print(f"== submitting {sample.relative_to(repo)} (speaker count not given: the engine estimates it)")
        submit_args = build_parser().parse_args(["submit", str(sample), "--wait", "--timeout", str(args.timeout)])
        code, doc = _submit(submit_args)  # the very job submitted, with its segments
        if code != EXIT_OK or doc is None:
            return code
        import json

        hypothesis = client.turns(doc["result"]["segments"])  # type: ignore[index]
        reference = next(iter(parse_rttm(reference_file.read_text()).values()))
        der = client.diarization_error_rate(reference, hypothesis)
        ref_speakers = len({t.speaker for t in reference})
        hyp_speakers = len({t.speaker for t in hypothesis})
        print()
        print(f"== DER against {reference_file.relative_to(repo)} (no collar, overlap scored): {der:.1%}")
        print(f"== speakers: found {hyp_speakers}, reference {ref_speakers}")
        print(json.dumps({"der": round(der, 4), "speakers": hyp_speakers, "reference_speakers": ref_speakers}))
        return EXIT_OK
    finally:
        if not args.keep:
            print("== bringing the local stack down")
            stack.down(cfg)


def _cmd_dlq(args: argparse.Namespace) -> int:
    import getpass
    import json
    import socket

    from speakerline import topology
    from speakerline_tools import deadletters

    _use_local_stack_if_running()
    topo = topology.load()
    unknown = [s for s in (args.subscription or []) if s not in topo.subscriptions]
    if unknown:
        print(f"unknown subscription(s) {unknown}; known: {', '.join(topo.subscriptions)}", file=sys.stderr)
        return EXIT_USAGE
    flt = deadletters.Filter(frozenset(args.reason or []), frozenset(args.job or []), frozenset(args.type or []))
    queue = deadletters.DeadLetterQueue(_project(), topo)
    if args.dlq_cmd == "list":
        subs = [topo.subscriptions[s] for s in args.subscription] if args.subscription else topo.subscriptions.values()
        found = [letter.summary() for letter in queue.list(subs, flt, args.limit)]
        if args.json:
            print(json.dumps(found, indent=2))
        else:
            for row in found:
                print(f"{row['subscription']:<28} {row['reason']:<22} {row['job_id'] or '-':<30} "
                      f"{row['event_type'] or '-'}  {row['detail'] or ''}")  # fmt: skip
            print(f"{len(found)} dead letter(s)")
        return EXIT_OK
    if not args.subscription or len(args.subscription) != 1:
        print("replay takes exactly one --subscription", file=sys.stderr)
        return EXIT_USAGE
    operator = args.operator or f"{getpass.getuser()}@{socket.gethostname()}"
    audit_dir = Path(args.audit_dir) if args.audit_dir else _stack_dir() / "audit"
    report = queue.replay(
        topo.subscriptions[args.subscription[0]],
        flt,
        operator=operator,
        limit=args.limit,
        execute=args.execute,
        include_invalid=args.include_invalid,
        audit_dir=audit_dir,
    )
    print(json.dumps(report.to_dict(), indent=2))
    if not args.execute:
        print(f"dry run: {len(report.replayed)} message(s) would be replayed; add --execute", file=sys.stderr)
    return EXIT_OK


def _cmd_eval(argv: Sequence[str]) -> int:
    """`speakerline eval ...` is `python -m diarization eval ...` (this package imports no service)."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("diarization") is None:
        print("speakerline eval needs the diarization service: pip install 'speakerline[diarization]'", file=sys.stderr)
        return EXIT_USAGE
    env = {**os.environ, "SPEAKERLINE_EVAL_PROG": "speakerline eval"}
    command = [sys.executable, "-m", "diarization", "eval", *argv]
    try:
        return subprocess.run(command, env=env, check=False).returncode
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speakerline", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p_stack = sub.add_parser("stack", help="the local emulators and services")
    stack_sub = p_stack.add_subparsers(dest="stack_cmd", required=True)
    p_up = stack_sub.add_parser("up", help="start emulators and services, apply the topology (idempotent)")
    p_up.add_argument("--no-services", action="store_true", help="only the emulators and the topology")
    p_up.add_argument(
        "--base-port", type=int, help="Pub/Sub on this port, Firestore on +1, GCS on +2 (default 8085, 8086, 4443)"
    )
    stack_sub.add_parser("down", help="stop everything (whole process groups)")
    stack_sub.add_parser("provision", help="apply the topology to emulators started elsewhere (docker compose)")
    stack_sub.add_parser("status", help="health of every component; exit 1 if any is down")
    stack_sub.add_parser("env", help="print export lines for the emulators")
    p_stack.set_defaults(func=_cmd_stack)

    p_schemas = sub.add_parser("schemas", help="event contracts: compatibility and AsyncAPI")
    schemas_sub = p_schemas.add_subparsers(dest="schemas_cmd", required=True)
    schemas_sub.add_parser("check", help="released schemas unbroken and asyncapi.yaml fresh; exit 1 otherwise")
    schemas_sub.add_parser("release", help="freeze new schema versions into schemas/released.json")
    schemas_sub.add_parser("asyncapi", help="regenerate schemas/asyncapi.yaml")
    p_schemas.set_defaults(func=_cmd_schemas)

    p_submit = sub.add_parser("submit", help="upload an audio file; its upload starts a job")
    p_submit.add_argument("file")
    p_submit.add_argument("--num-speakers", type=int)
    p_submit.add_argument("--min-speakers", type=int)
    p_submit.add_argument("--max-speakers", type=int)
    p_submit.add_argument("--webhook", help="URL to POST the signed job outcome to")
    p_submit.add_argument("--correlation-id", help="your own id, echoed in every event of the job")
    p_submit.add_argument("--wait", action="store_true", help="follow the job to its end, then print the timeline")
    p_submit.add_argument("--json", action="store_true", help="print the final job document as JSON")
    p_submit.add_argument("--timeout", type=float, default=900.0, help="seconds --wait waits (default 900)")
    p_submit.set_defaults(func=_cmd_submit)

    p_jobs = sub.add_parser("jobs", help="query job state (Firestore)")
    jobs_sub = p_jobs.add_subparsers(dest="jobs_cmd", required=True)
    p_get = jobs_sub.add_parser("get", help="one job")
    p_get.add_argument("job_id")
    p_get.add_argument("--json", action="store_true")
    p_list = jobs_sub.add_parser("list", help="recent jobs, newest first")
    p_list.add_argument("--status", help="RECEIVED, INGESTED, DIARIZING, DIARIZED, COMPLETED, REJECTED, FAILED")
    p_list.add_argument("--limit", type=int, default=20)
    p_list.add_argument("--json", action="store_true")
    p_jobs.set_defaults(func=_cmd_jobs)

    p_dlq = sub.add_parser("dlq", help="ops: inspect and replay dead-lettered messages")
    dlq_sub = p_dlq.add_subparsers(dest="dlq_cmd", required=True)
    p_list = dlq_sub.add_parser("list", help="dead letters with their reasons (nothing is consumed)")
    p_replay = dlq_sub.add_parser("replay", help="republish matching dead letters to their topic (dry run by default)")
    for p in (p_list, p_replay):
        p.add_argument("--subscription", action="append", help="service subscription (repeatable; all by default)")
        p.add_argument("--reason", action="append", help="e.g. retries_exhausted, schema_violation (repeatable)")
        p.add_argument("--job", action="append", help="job id (repeatable)")
        p.add_argument("--type", action="append", help="CloudEvent type (repeatable)")
        p.add_argument("--limit", type=int, default=100)
    p_list.add_argument("--json", action="store_true")
    p_replay.add_argument("--execute", action="store_true", help="really replay (default: show what would happen)")
    p_replay.add_argument("--include-invalid", action="store_true", help="also replay messages refused as invalid")
    p_replay.add_argument("--operator", help="who replays, for the audit trail (default: user@host)")
    p_replay.add_argument("--audit-dir", help="where the audit record goes (default: .stack/audit)")
    p_dlq.set_defaults(func=_cmd_dlq)

    p_demo = sub.add_parser("demo", help="stack up, diarize the bundled sample, print timeline and DER, stack down")
    p_demo.add_argument("--timeout", type=float, default=900.0)
    p_demo.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    p_demo.set_defaults(func=_cmd_demo)

    # Parsed by the diarization service itself (main() hands everything after `eval` over); listed here for --help.
    p_eval = sub.add_parser(
        "eval",
        add_help=False,
        help="DER, speaker counts and real-time factor of an engine on a directory of audio + reference RTTMs",
        usage="speakerline eval DIR [--engine E] [--num-speakers-from-reference] [--json] [--max-der X]",
    )
    p_eval.add_argument("args", nargs=argparse.REMAINDER)
    p_eval.set_defaults(func=lambda args: _cmd_eval(args.args))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from speakerline import logs

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eval"]:  # options go to the evaluation as they are (see _cmd_eval)
        return _cmd_eval(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure("cli", level=os.environ.get("SPEAKERLINE_LOG_LEVEL", "WARNING"))  # JSON lines on stderr
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
