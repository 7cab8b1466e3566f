"""`speakerline` command line: the local stack, submitting audio, querying jobs, evaluating an engine.

One module per command group (`stack`, `schemas`, `submit`, `jobs`, `apikey`, `dlq`, `demo`, `eval`), each with
`add_parser(subparsers)`, which registers its sub-commands and sets `func` (parsed arguments -> exit code).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from speakerline_tools.cli import apikey, demo, dlq, jobs, schemas, stack, submit
from speakerline_tools.cli import eval as eval_command

# In the order `speakerline --help` lists them.
GROUPS = (stack, schemas, submit, jobs, apikey, dlq, demo, eval_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speakerline", description=__doc__.split("\n", 1)[0])
    subparsers = parser.add_subparsers(dest="cmd", required=True)
    for group in GROUPS:
        group.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from speakerline import logs
    from speakerline.settings import Settings

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    settings = Settings()
    logs.configure("cli", settings.log_level or "WARNING", project=settings.project)  # JSON lines on stderr
    return int(args.func(args))
