"""`speakerline demo`: stack up, diarize the bundled sample, compare with its reference annotation, stack down."""

from __future__ import annotations

import argparse
import json
import sys

from speakerline_tools import repo
from speakerline_tools import stack as local
from speakerline_tools.cli import submit
from speakerline_tools.cli.common import EXIT_JOB_FAILED, EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_demo = subparsers.add_parser(
        "demo", help="stack up, diarize the bundled sample, print timeline and DER, stack down"
    )
    p_demo.add_argument("--timeout", type=float, default=900.0)
    p_demo.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    p_demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from speakerline.timeline import parse_rttm
    from speakerline_tools import client, evaluation

    root = repo.root()
    sample = root / "tests" / "data" / "sample" / "conversation.flac"
    reference_file = sample.with_suffix(".rttm")
    cfg = local.StackConfig(root=repo.stack_dir())
    print("== bringing the local stack up (emulators + services)")
    try:
        local.up(cfg)
    except local.StackError as exc:
        print(f"stack up failed: {exc}", file=sys.stderr)
        local.down(cfg)
        return EXIT_JOB_FAILED
    try:
        print(f"== submitting {sample.relative_to(root)} (speaker count not given: the engine estimates it)")
        code, doc = submit.submit(submit.parse([str(sample), "--wait", "--timeout", str(args.timeout)]))
        if code != EXIT_OK or doc is None:
            return code
        # The very job submitted, with its segments.
        hypothesis = client.turns(doc["result"]["segments"])
        reference = next(iter(parse_rttm(reference_file.read_text()).values()))
        der = evaluation.timeline_der(reference, hypothesis, float(doc["audio"]["duration_s"]))
        ref_speakers = len({t.speaker for t in reference})
        hyp_speakers = len({t.speaker for t in hypothesis})
        print()
        print(f"== DER against {reference_file.relative_to(root)} (no collar, overlap scored): {der:.1%}")
        print(f"== speakers: found {hyp_speakers}, reference {ref_speakers}")
        print(json.dumps({"der": round(der, 4), "speakers": hyp_speakers, "reference_speakers": ref_speakers}))
        return EXIT_OK
    finally:
        if not args.keep:
            print("== bringing the local stack down")
            local.down(cfg)
