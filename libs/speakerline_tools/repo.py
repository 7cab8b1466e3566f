"""Where the checkout is: the tooling works on a speakerline source tree (schemas/, infra/, .stack/)."""

from __future__ import annotations

import os
from pathlib import Path

MARKER = Path("infra") / "topology.yaml"


def root() -> Path:
    """The checkout's root: `SPEAKERLINE_REPO`, else the nearest folder above the working directory (or above
    this package, for an editable install used from elsewhere) that holds infra/topology.yaml."""
    override = os.environ.get("SPEAKERLINE_REPO")
    if override:
        return Path(override)
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if (folder / MARKER).is_file() and (folder / "schemas").is_dir():
                return folder
    raise FileNotFoundError("not inside a speakerline checkout (no infra/topology.yaml above); set SPEAKERLINE_REPO")


def stack_dir() -> Path:
    """State of the local stack: `SPEAKERLINE_STACK_DIR`, else .stack/ in the checkout."""
    override = os.environ.get("SPEAKERLINE_STACK_DIR")
    return Path(override) if override else root() / ".stack"
