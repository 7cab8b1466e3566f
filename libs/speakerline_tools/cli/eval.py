"""`speakerline eval DIR`: DER, speaker counts and real-time factor of an engine (`speakerline_tools.evaluation`,
run in this process)."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from speakerline_tools.cli.common import EXIT_USAGE

HELP = "DER, speaker counts and real-time factor of an engine on a directory of audio + reference RTTMs"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # The options are the evaluation's own, parsed by a parser it fills when the command runs: importing it (and
    # the diarization engines it names) costs the other commands nothing, and an install without the diarization
    # service still lists the command. No character is an option prefix here, so every argument is kept as given.
    p_eval = subparsers.add_parser("eval", help=HELP, add_help=False, prefix_chars="\0")
    p_eval.add_argument("args", nargs="*")
    p_eval.set_defaults(func=_eval)


def parser() -> argparse.ArgumentParser:
    """The `speakerline eval` parser with the evaluation's options."""
    from speakerline_tools import evaluation

    parser = argparse.ArgumentParser(prog="speakerline eval", description=evaluation.DESCRIPTION)
    evaluation.add_arguments(parser)
    return parser


def _eval(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("diarization") is None:
        print("speakerline eval needs the diarization service: pip install 'speakerline[diarization]'", file=sys.stderr)
        return EXIT_USAGE
    from speakerline_tools import evaluation

    try:
        return evaluation.run(parser().parse_args(args.args))
    except KeyboardInterrupt:
        return 130
