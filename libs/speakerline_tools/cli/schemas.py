"""`speakerline schemas check|release|asyncapi|generate`: the event contracts of schemas/events/ and what is made
from them (`speakerline_tools.contracts`, `speakerline_tools.codegen`)."""

from __future__ import annotations

import argparse
import sys

from speakerline_tools import repo


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_schemas = subparsers.add_parser("schemas", help="event contracts: compatibility, generated code and AsyncAPI")
    schemas_sub = p_schemas.add_subparsers(dest="schemas_cmd", required=True)
    commands = (
        ("check", _check, "released schemas unbroken, generated code and asyncapi.yaml fresh; exit 1 otherwise"),
        ("generate", _generate, "regenerate the typed models and bundled schemas of libs/speakerline/events/"),
        ("release", _release, "freeze new schema versions into schemas/released.json"),
        ("asyncapi", _asyncapi, "regenerate schemas/asyncapi.yaml"),
    )
    for name, func, summary in commands:
        schemas_sub.add_parser(name, help=summary).set_defaults(func=func)


def _asyncapi(args: argparse.Namespace) -> int:
    from speakerline import topology
    from speakerline_tools import contracts

    target = contracts.asyncapi_file()
    target.write_text(contracts.render_asyncapi(topology.load()))
    print(f"wrote {target}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from speakerline_tools import codegen

    written = codegen.generate()
    for path in written:
        print(f"wrote {path}")
    if not written:
        print("generated code is up to date")
    return 0


def _check(args: argparse.Namespace) -> int:
    from speakerline import topology
    from speakerline_tools import codegen, contracts

    problems = contracts.check_against_released()
    for event_type, found in problems.items():
        for problem in found:
            print(f"{event_type}: {problem}", file=sys.stderr)
    stale = contracts.asyncapi_file().read_text() != contracts.render_asyncapi(topology.load())
    if stale:
        print("schemas/asyncapi.yaml is stale: run `speakerline schemas asyncapi`", file=sys.stderr)
    root = repo.root()
    generated = [str(path.relative_to(root)) for path in codegen.stale(root)]
    if generated:
        verb = "is" if len(generated) == 1 else "are"
        print(f"{', '.join(generated)} {verb} stale: run `speakerline schemas generate`", file=sys.stderr)
    return 1 if problems or stale or generated else 0


def _release(args: argparse.Namespace) -> int:
    from speakerline_tools import contracts

    try:
        added = contracts.release()
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print("released: " + (", ".join(added) or "nothing new"))
    return 0
