"""`speakerline dlq list|replay`: ops' look at dead-lettered messages and their audited replay
(`speakerline_tools.deadletters`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from speakerline_tools import repo
from speakerline_tools.cli import common
from speakerline_tools.cli.common import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from speakerline.topology import Topology
    from speakerline_tools.deadletters import DeadLetterQueue, Filter


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_dlq = subparsers.add_parser("dlq", help="ops: inspect and replay dead-lettered messages")
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
    p_list.set_defaults(func=_list)
    p_replay.add_argument("--execute", action="store_true", help="really replay (default: show what would happen)")
    p_replay.add_argument("--include-invalid", action="store_true", help="also replay messages refused as invalid")
    p_replay.add_argument("--operator", help="who replays, for the audit trail (default: user@host)")
    p_replay.add_argument("--audit-dir", help="where the audit record goes (default: .stack/audit)")
    p_replay.set_defaults(func=_replay)


def _queue(args: argparse.Namespace) -> tuple[Topology, Filter, DeadLetterQueue] | None:
    """The topology, the filter the options ask for and the queue; None (after saying why) for an unknown
    subscription."""
    from speakerline import topology
    from speakerline_tools import deadletters

    common.use_local_stack_if_running()
    topo = topology.load()
    unknown = [s for s in (args.subscription or []) if s not in topo.subscriptions]
    if unknown:
        print(f"unknown subscription(s) {unknown}; known: {', '.join(topo.subscriptions)}", file=sys.stderr)
        return None
    flt = deadletters.Filter(frozenset(args.reason or []), frozenset(args.job or []), frozenset(args.type or []))
    return topo, flt, deadletters.DeadLetterQueue(common.project(), topo)


def _list(args: argparse.Namespace) -> int:
    found_queue = _queue(args)
    if found_queue is None:
        return EXIT_USAGE
    topo, flt, queue = found_queue
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


def _replay(args: argparse.Namespace) -> int:
    import getpass
    import socket

    found_queue = _queue(args)
    if found_queue is None:
        return EXIT_USAGE
    topo, flt, queue = found_queue
    if not args.subscription or len(args.subscription) != 1:
        print("replay takes exactly one --subscription", file=sys.stderr)
        return EXIT_USAGE
    operator = args.operator or f"{getpass.getuser()}@{socket.gethostname()}"
    audit_dir = Path(args.audit_dir) if args.audit_dir else repo.stack_dir() / "audit"
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
