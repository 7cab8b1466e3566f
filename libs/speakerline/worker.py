"""`python -m speakerline.worker NAME`: run a service the way infra/topology.yaml says (settings from the
environment): a pull worker, or, for a service whose entrypoint is `http` (the API), its HTTP app under uvicorn.

`--envelope FILE` handles one Pub/Sub push envelope from a file instead, as the push function would, and exits
with 0 when it was handled (what a Vertex AI custom job runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speakerline import bootstrap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speakerline.worker", description=__doc__)
    parser.add_argument("service", help="the service to run, as named in infra/topology.yaml (e.g. ingest)")
    parser.add_argument("--envelope", type=Path, help="handle this one push envelope (JSON file) and exit")
    args = parser.parse_args(argv)
    if args.envelope is not None:
        return bootstrap.run_envelope(args.service, args.envelope)
    bootstrap.run(args.service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
