"""`speakerline stack up|down|provision|status|env`: the local emulators and services (`speakerline_tools.stack`)."""

from __future__ import annotations

import argparse
import sys

from speakerline_tools import repo
from speakerline_tools import stack as local


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_stack = subparsers.add_parser("stack", help="the local emulators and services")
    stack_sub = p_stack.add_subparsers(dest="stack_cmd", required=True)
    p_up = stack_sub.add_parser("up", help="start emulators and services, apply the topology (idempotent)")
    p_up.add_argument("--no-services", action="store_true", help="only the emulators and the topology")
    p_up.add_argument(
        "--base-port",
        type=int,
        help="Pub/Sub on this port, Firestore on +1, GCS on +2, the API on +3 (default 8085, 8086, 4443, 8080)",
    )
    p_up.set_defaults(func=_up)
    stack_sub.add_parser("down", help="stop everything (whole process groups)").set_defaults(func=_down)
    stack_sub.add_parser(
        "provision", help="apply the topology to emulators started elsewhere (docker compose)"
    ).set_defaults(func=_provision)
    stack_sub.add_parser("status", help="health of every component; exit 1 if any is down").set_defaults(func=_status)
    stack_sub.add_parser("env", help="print export lines for the emulators").set_defaults(func=_env)


def _up(args: argparse.Namespace) -> int:
    root = repo.stack_dir()
    saved = local.StackConfig.load(root)  # a stack brought up before keeps its ports (no state: the defaults)
    base = args.base_port
    cfg = local.StackConfig(
        root=root,
        project=saved.project,
        services=not args.no_services,
        pubsub_port=base or saved.pubsub_port,
        firestore_port=base + 1 if base else saved.firestore_port,
        gcs_port=base + 2 if base else saved.gcs_port,
        api_port=base + 3 if base else saved.api_port,
    )
    try:
        local.up(cfg)
    except local.StackError as exc:
        print(f"stack up failed: {exc}", file=sys.stderr)
        return 1
    if cfg.services:
        print(f"api:    {cfg.api_url}/docs")
    print('stack is up. For other shells: eval "$(speakerline stack env)"')
    return 0


def _provision(args: argparse.Namespace) -> int:
    """For emulators started elsewhere (docker compose): apply the topology to them and create the buckets."""
    from google.cloud import storage as gcs_client

    from speakerline import topology
    from speakerline.settings import Settings
    from speakerline_tools import provision

    settings = Settings()
    env_project = settings.project or local.DEFAULT_PROJECT
    report = provision.apply_pubsub(topology.load(settings.topology_file, profile="local"), env_project)
    print(f"pubsub topology: {len(report.created)} created, {len(report.existing)} already there")
    sreport = provision.apply_storage(settings.topology, gcs_client.Client(project=env_project))
    print(f"buckets: {len(sreport.created)} created, {len(sreport.existing)} already there")
    return 0


def _down(args: argparse.Namespace) -> int:
    local.down(local.StackConfig.load(repo.stack_dir()))
    return 0


def _env(args: argparse.Namespace) -> int:
    print("\n".join(local.env_lines(local.StackConfig.load(repo.stack_dir()))))
    return 0


def _status(args: argparse.Namespace) -> int:
    cfg = local.StackConfig.load(repo.stack_dir())
    rows = local.status(cfg)
    ok = True
    for row in rows:
        if row.kind == "service" and not cfg.services:
            continue
        ok &= row.healthy
        state = "healthy" if row.healthy else "DOWN"
        print(f"{row.name:<14} {row.kind:<9} {state:<8} pid={row.pid or '-'}")
    emulators_up = all(r.healthy for r in rows if r.name == "pubsub")
    if emulators_up:
        missing = local.topology_applied(cfg)
        ok &= not missing
        print(f"{'topology':<14} {'pubsub':<9} {'applied' if not missing else 'MISSING: ' + ', '.join(missing)}")
    return 0 if ok else 1
