"""What several command groups share: exit codes, finding the project and the local stack, job documents as JSON."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from speakerline import jobdoc
from speakerline.settings import Settings
from speakerline_tools import repo, stack

EXIT_OK, EXIT_JOB_FAILED, EXIT_TIMEOUT, EXIT_USAGE = 0, 1, 2, 64


def use_local_stack_if_running() -> None:
    """Without emulator settings in the environment, talk to the local stack if one was brought up."""
    if "STORAGE_EMULATOR_HOST" in os.environ or "PUBSUB_EMULATOR_HOST" in os.environ:
        return
    root = repo.stack_dir()
    if (root / stack.STATE_FILE).exists():
        for key, value in stack.StackConfig.load(root).emulator_env().items():
            os.environ.setdefault(key, value)


def project() -> str:
    project = Settings().project
    if not project:
        print("GOOGLE_CLOUD_PROJECT is not set (and no local stack is up: `speakerline stack up`)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    return project


def print_json(value: Any) -> None:
    """A job document (or a list of them) as `--json` prints it: Firestore datetimes as ISO strings."""
    print(json.dumps(jobdoc.jsonable(value), indent=2, sort_keys=True))


def final_document(job: dict[str, Any] | None, job_id: str) -> dict[str, Any]:
    """The job document as `--json` prints it: segments of a completed job inlined from output.json."""
    import google.cloud.storage as gcs

    from speakerline.storage import GcsBlobStore
    from speakerline_tools import client

    if job is None:
        return {"job_id": job_id, "status": "UNKNOWN"}
    doc = dict(job)
    if doc.get("status") == "COMPLETED":
        result = dict(doc.get("result") or {})
        result["segments"] = client.segments(GcsBlobStore(gcs.Client(project=project())), doc)
        doc["result"] = result
    return doc
