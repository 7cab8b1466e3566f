"""`speakerline` command line: the local stack, submitting audio, querying jobs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from speakerline import stack


def _stack_dir() -> Path:
    override = os.environ.get("SPEAKERLINE_STACK_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2] / ".stack"


def _cmd_stack(args: argparse.Namespace) -> int:
    root = _stack_dir()
    cfg = stack.StackConfig.load(root)
    if args.stack_cmd == "up":
        cfg = stack.StackConfig(root=root, project=cfg.project, services=not args.no_services)
        try:
            stack.up(cfg)
        except stack.StackError as exc:
            print(f"stack up failed: {exc}", file=sys.stderr)
            return 1
        print('stack is up. For other shells: eval "$(speakerline stack env)"')
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
    from speakerline import contracts, topology

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speakerline", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p_stack = sub.add_parser("stack", help="the local emulators and services")
    stack_sub = p_stack.add_subparsers(dest="stack_cmd", required=True)
    p_up = stack_sub.add_parser("up", help="start emulators and services, apply the topology (idempotent)")
    p_up.add_argument("--no-services", action="store_true", help="only the emulators and the topology")
    stack_sub.add_parser("down", help="stop everything (whole process groups)")
    stack_sub.add_parser("status", help="health of every component; exit 1 if any is down")
    stack_sub.add_parser("env", help="print export lines for the emulators")
    p_stack.set_defaults(func=_cmd_stack)

    p_schemas = sub.add_parser("schemas", help="event contracts: compatibility and AsyncAPI")
    schemas_sub = p_schemas.add_subparsers(dest="schemas_cmd", required=True)
    schemas_sub.add_parser("check", help="released schemas unbroken and asyncapi.yaml fresh; exit 1 otherwise")
    schemas_sub.add_parser("release", help="freeze new schema versions into schemas/released.json")
    schemas_sub.add_parser("asyncapi", help="regenerate schemas/asyncapi.yaml")
    p_schemas.set_defaults(func=_cmd_schemas)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
