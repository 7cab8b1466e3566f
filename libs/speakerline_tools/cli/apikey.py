"""`speakerline apikey create|revoke|list`: the HTTP API's keys (stored hashed in Firestore, `speakerline.apikeys`).

A new key is printed once, on stdout alone (`KEY=$(speakerline apikey create --producer newsroom)`); only its
SHA-256 is stored, so a lost key is revoked and replaced, never recovered.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from speakerline import apikeys
from speakerline_tools.cli import common


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_key = subparsers.add_parser("apikey", help="API keys of the HTTP API and studio")
    sub = p_key.add_subparsers(dest="apikey_cmd", required=True)
    p_create = sub.add_parser("create", help="create a key for a producer and print it (once)")
    p_create.add_argument("--producer", required=True, help="who the key's jobs belong to (e.g. newsroom)")
    p_create.add_argument("--description", default="", help="a note: what or who the key is for")
    p_create.set_defaults(func=_create)
    p_revoke = sub.add_parser("revoke", help="revoke a key at once (by its id, or the key itself)")
    p_revoke.add_argument("key", help="the key id (12 hex, as `list` shows) or the whole key")
    p_revoke.set_defaults(func=_revoke)
    p_list = sub.add_parser("list", help="the keys (ids, producers, states; never the secrets)")
    p_list.add_argument("--producer", help="only this producer's")
    p_list.set_defaults(func=_list)


def _store() -> apikeys.FirestoreApiKeys:
    from google.cloud import firestore

    common.use_local_stack_if_running()
    client: Any = firestore.Client(project=common.project())
    return apikeys.FirestoreApiKeys(client)


def _create(args: argparse.Namespace) -> int:
    try:
        key, record = _store().create(args.producer, args.description)
    except ValueError as exc:
        print(f"apikey create: {exc}", file=sys.stderr)
        return 2
    print(key)
    print(f"key {record.key_id} for producer {record.producer}: shown once, store it now", file=sys.stderr)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    parsed = apikeys.parse(args.key)
    key_id = parsed[0] if parsed else args.key
    if not _store().revoke(key_id):
        print(f"apikey revoke: no key {key_id}", file=sys.stderr)
        return 1
    print(f"revoked {key_id}")
    return 0


def _list(args: argparse.Namespace) -> int:
    for key in _store().list(args.producer):
        state = "active" if key.active else f"revoked {key.revoked_at:%Y-%m-%d %H:%M}"
        print(f"{key.key_id}  {key.producer:<20} {key.created_at:%Y-%m-%d %H:%M}  {state}  {key.description}")
    return 0
