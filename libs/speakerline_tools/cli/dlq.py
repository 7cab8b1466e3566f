"""`speakerline dlq list|show|replay|purge|audit`: ops' look at dead-lettered messages, their replay and purge,
and the audit trail of both (`speakerline_tools.deadletters`)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from speakerline_tools.cli import common
from speakerline_tools.cli.common import EXIT_JOB_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from speakerline.topology import Subscription, Topology
    from speakerline_tools.deadletters import AuditTrail, DeadLetter, DeadLetterQueue, Filter, Report

PURGE_EPILOG = """\
Without --yes, purge deletes nothing: it prints what it would delete (a dry run, recorded in the audit trail)
and exits 0. Without --job or --all it refuses and exits 64: a purge always names what it deletes."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_dlq = subparsers.add_parser("dlq", help="ops: inspect, replay and purge dead-lettered messages")
    dlq_sub = p_dlq.add_subparsers(dest="dlq_cmd", required=True)

    p_list = dlq_sub.add_parser("list", help="dead letters with their reasons (nothing is consumed)")
    p_list.add_argument("--subscription", action="append", help="service subscription (repeatable; all by default)")
    _add_filters(p_list, job_help="job id (repeatable)")
    p_list.add_argument("--limit", type=int, default=100)
    p_list.add_argument("--json", action="store_true")
    p_list.set_defaults(func=_list)

    p_show = dlq_sub.add_parser(
        "show", help="the dead letters of one subscription in full: attributes and data (nothing is consumed)"
    )
    p_show.add_argument(
        "subscription", metavar="SUBSCRIPTION", help="service subscription, e.g. diarization-audio-ingested"
    )
    _add_filters(p_show, job_help="job id (repeatable)")
    p_show.add_argument("--limit", type=int, default=20, help="at most this many, oldest first (default 20)")
    p_show.add_argument("--json", action="store_true")
    p_show.set_defaults(func=_show)

    p_replay = dlq_sub.add_parser(
        "replay", help="republish matching dead letters to their topic (dry run unless --execute)"
    )
    p_replay.add_argument("--subscription", action="append", help="service subscription (exactly one)")
    _add_filters(p_replay, job_help="job id (repeatable)")
    p_replay.add_argument("--limit", type=int, default=100, help="replay at most this many, oldest first (default 100)")
    p_replay.add_argument("--rate", type=float, help="republish at most this many per second (default: unlimited)")
    p_replay.add_argument("--execute", action="store_true", help="really replay (default: show what would happen)")
    p_replay.add_argument("--include-invalid", action="store_true", help="also replay messages refused as invalid")
    p_replay.add_argument("--operator", help="who replays, for the audit trail (default: user@host)")
    p_replay.set_defaults(func=_replay)

    p_purge = dlq_sub.add_parser(
        "purge", help="acknowledge (delete for good) matching dead letters (dry run unless --yes)", epilog=PURGE_EPILOG
    )
    p_purge.add_argument("--subscription", required=True, help="service subscription")
    which = p_purge.add_mutually_exclusive_group()
    which.add_argument("--job", action="append", help="delete the dead letters of this job (repeatable)")
    which.add_argument(
        "--all",
        action="store_true",
        help="delete every dead letter of the subscription (narrowed by --reason, --type, --since if given)",
    )
    _add_filters(p_purge, job_help=None)
    p_purge.add_argument("--limit", type=int, help="delete at most this many, oldest first (default: every match)")
    p_purge.add_argument("--yes", action="store_true", help="really delete (default: show what would be deleted)")
    p_purge.add_argument("--operator", help="who purges, for the audit trail (default: user@host)")
    p_purge.set_defaults(func=_purge)

    p_audit = dlq_sub.add_parser("audit", help="the audit trail of replays and purges, newest first")
    p_audit.add_argument("--limit", type=int, default=20)
    p_audit.add_argument("--json", action="store_true")
    p_audit.set_defaults(func=_audit)


def _add_filters(p: argparse.ArgumentParser, job_help: str | None) -> None:
    p.add_argument("--reason", action="append", help="e.g. retries_exhausted, schema_violation (repeatable)")
    if job_help:
        p.add_argument("--job", action="append", help=job_help)
    p.add_argument("--type", action="append", help="CloudEvent type (repeatable)")
    p.add_argument(
        "--since", help="only dead letters published since: an ISO 8601 time (UTC unless it says) or 30m, 2h, 1d"
    )


def _usage(message: str) -> int:
    print(f"dlq: {message}", file=sys.stderr)
    return EXIT_USAGE


def _filter(args: argparse.Namespace) -> Filter:
    """The filter the options ask for; ValueError for a --since that is not a time."""
    from speakerline_tools import deadletters

    since = deadletters.parse_since(args.since, datetime.now(UTC)) if args.since else None
    return deadletters.Filter(
        frozenset(args.reason or []), frozenset(args.job or []), frozenset(args.type or []), since
    )


def _queue(args: argparse.Namespace, names: list[str]) -> tuple[Topology, Filter, DeadLetterQueue] | str:
    """The topology, the filter and the queue; or why not (an unknown subscription, a bad option)."""
    from speakerline.settings import Settings
    from speakerline_tools import deadletters

    limit = getattr(args, "limit", None)
    if limit is not None and limit < 1:
        return "--limit must be at least 1"
    if getattr(args, "rate", None) is not None and args.rate <= 0:
        return "--rate must be positive"
    try:
        flt = _filter(args)
    except ValueError as exc:
        return str(exc)
    common.use_local_stack_if_running()
    topo = Settings().topology
    unknown = [s for s in names if s not in topo.subscriptions]
    if unknown:
        return f"unknown subscription(s) {unknown}; known: {', '.join(topo.subscriptions)}"
    return topo, flt, deadletters.DeadLetterQueue(common.project(), topo)


def _subscription_name(name: str) -> str:
    """A service subscription; its dead-letter subscription's name is taken to mean it."""
    from speakerline.topology import DEAD_LETTER_SUFFIX

    return name.removesuffix(DEAD_LETTER_SUFFIX)


def _audit_trail() -> AuditTrail:
    from google.cloud import firestore

    from speakerline_tools import deadletters

    client: Any = firestore.Client(project=common.project())
    return deadletters.AuditTrail(client)


def _operator(args: argparse.Namespace) -> str:
    import getpass
    import socket

    if args.operator:
        return str(args.operator)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _list(args: argparse.Namespace) -> int:
    from speakerline_tools.deadletters import safe_text

    found_queue = _queue(args, args.subscription or [])
    if isinstance(found_queue, str):
        return _usage(found_queue)
    topo, flt, queue = found_queue
    subs = [topo.subscriptions[s] for s in args.subscription] if args.subscription else topo.subscriptions.values()
    found = [letter.summary() for letter in queue.list(subs, flt, args.limit)]
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        for row in found:
            print(f"{row['subscription']:<28} {row['reason']:<22} {row['job_id'] or '-':<30} "
                  f"{row['event_type'] or '-'}  {safe_text(row['detail'] or '')}")  # fmt: skip
        print(f"{len(found)} dead letter(s)")
    return EXIT_OK


def format_letter(letter: DeadLetter) -> str:
    """One dead letter in full, for people: what it is, why it is here, every attribute, its data. Whatever the
    message carries is shown through `safe_text` (no raw control characters reach the terminal)."""
    from speakerline_tools.deadletters import safe_text

    d = letter.detail()
    attempts = d["delivery_attempts"]
    lines = [
        f"message    {d['message_id']}  (dead letter of {d['subscription']})",
        f"published  {d['dead_lettered_at']}",
        f"attempts   {attempts if attempts is not None else '- (refused on receipt, never retried)'}",
        f"reason     {safe_text(d['reason'])}",
    ]
    if d["detail"]:
        lines.append(f"detail     {safe_text(d['detail'])}")
    lines.append(f"job        {safe_text(d['job_id'] or '-')}")
    lines.append(safe_text(f"event      {d['event_type'] or '-'}  {d['event_id'] or ''}".rstrip()))
    lines.append("attributes")
    lines.extend(f"  {safe_text(key)}: {safe_text(value)}" for key, value in d["attributes"].items())
    if d["data_format"] == "json":
        lines.append(f"data       {d['data_bytes']} bytes, JSON")
        pretty = json.dumps(d["data"], indent=2, ensure_ascii=False)
        lines.extend("  " + safe_text(line) for line in pretty.splitlines())
    else:
        lines.append(f"data       {d['data_bytes']} bytes, {d['data_format']} (excerpt)")
        lines.extend("  " + safe_text(line, keep="\t") for line in str(d["data"]).split("\n"))
    return "\n".join(lines)


def _show(args: argparse.Namespace) -> int:
    name = _subscription_name(args.subscription)
    found_queue = _queue(args, [name])
    if isinstance(found_queue, str):
        return _usage(found_queue)
    topo, flt, queue = found_queue
    letters = queue.show(topo.subscriptions[name], flt, args.limit)
    if args.json:
        print(json.dumps([letter.detail() for letter in letters], indent=2))
        return EXIT_OK
    for letter in letters:
        print(format_letter(letter), end="\n\n")
    print(f"{len(letters)} dead letter(s) of {name} (none consumed)")
    return EXIT_OK


def _notes(report: Report) -> None:
    from speakerline_tools.deadletters import MAX_SCAN

    print(f"{report.action} {report.id} recorded in the audit trail (dlq_audit)", file=sys.stderr)
    if report.truncated:
        print(f"only the first {MAX_SCAN} dead letters were looked at: run it again for the rest", file=sys.stderr)


def _replay(args: argparse.Namespace) -> int:
    if not args.subscription or len(args.subscription) != 1:
        return _usage("replay takes exactly one --subscription")
    found_queue = _queue(args, args.subscription)
    if isinstance(found_queue, str):
        return _usage(found_queue)
    topo, flt, queue = found_queue
    report = queue.replay(
        topo.subscriptions[args.subscription[0]],
        flt,
        operator=_operator(args),
        limit=args.limit,
        execute=args.execute,
        include_invalid=args.include_invalid,
        rate=args.rate,
        audit=_audit_trail(),
    )
    print(json.dumps(report.to_dict(), indent=2))
    _notes(report)
    if report.skipped:
        print(
            f"{len(report.skipped)} never-valid message(s) skipped (--include-invalid to replay them)", file=sys.stderr
        )
    if not args.execute:
        print(f"dry run: {len(report.done)} message(s) would be replayed; add --execute", file=sys.stderr)
    elif report.error:
        print(f"replay stopped after {len(report.done)} message(s): {report.error}", file=sys.stderr)
        return EXIT_JOB_FAILED
    return EXIT_OK


def _purge(args: argparse.Namespace) -> int:
    if not args.job and not args.all:
        return _usage("purge needs --job JOB (repeatable) or --all: it never deletes without a filter")
    found_queue = _queue(args, [args.subscription])
    if isinstance(found_queue, str):
        return _usage(found_queue)
    topo, flt, queue = found_queue
    sub: Subscription = topo.subscriptions[args.subscription]
    report = queue.purge(
        sub,
        flt,
        operator=_operator(args),
        everything=args.all,
        execute=args.yes,
        limit=args.limit,
        audit=_audit_trail(),
    )
    print(json.dumps(report.to_dict(), indent=2))
    _notes(report)
    if not args.yes:
        print(f"dry run: {len(report.done)} message(s) would be deleted for good; add --yes", file=sys.stderr)
    elif report.error:
        print(f"purge stopped after {len(report.done)} message(s): {report.error}", file=sys.stderr)
        return EXIT_JOB_FAILED
    return EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    if args.limit < 1:
        return _usage("--limit must be at least 1")
    common.use_local_stack_if_running()
    records = _audit_trail().recent(args.limit)
    if args.json:
        common.print_json(records)
        return EXIT_OK
    for r in records:
        at = r["at"].strftime("%Y-%m-%d %H:%M:%SZ") if isinstance(r.get("at"), datetime) else str(r.get("at"))
        mode = "dry run" if r.get("dry_run") else r.get("status", "")
        flt = {k: v for k, v in (r.get("filter") or {}).items() if v}
        if (r.get("options") or {}).get("all"):
            flt["all"] = True
        print(f"{at}  {r.get('action'):<6} {mode:<9} {r.get('count', 0):>5}  {r.get('subscription'):<28} "
              f"{r.get('operator')}  {r.get('id')}  {json.dumps(flt, sort_keys=True)}")  # fmt: skip
    print(f"{len(records)} record(s)")
    return EXIT_OK
