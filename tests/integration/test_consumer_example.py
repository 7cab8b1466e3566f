"""The consumer example of docs/events.md, run as written against the Pub/Sub emulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import google.cloud.pubsub_v1 as pubsub_v1
import pytest

from speakerline import events, topology
from speakerline.pubsub import PubSubPublisher
from speakerline_tools.stack import StackConfig

pytestmark = pytest.mark.integration
MARKER = "<!-- consumer example: tests/integration/test_consumer_example.py runs it -->"


def documented_example() -> str:
    page = Path("docs/events.md").read_text()
    after = page[page.index(MARKER) + len(MARKER) :]
    match = re.match(r"\s*```python\n(.*?)```", after, re.S)
    assert match, "the marker must be followed by a python code block"
    return match.group(1)


def test_the_documented_consumer_example_handles_job_outcomes(emulators: StackConfig, unique: str) -> None:
    project = emulators.project
    subscriber = pubsub_v1.SubscriberClient()
    subscription = f"my-app-job-outcomes-{unique}"
    subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(project, subscription),
            "topic": f"projects/{project}/topics/job-outcomes",
        }
    )
    completed = events.parse_json(Path("schemas/events/job.completed/v1.example.json").read_bytes())
    failed = events.parse_json(Path("schemas/events/job.failed/v1.example.json").read_bytes())
    publisher = PubSubPublisher(project, topology.load())
    publisher.publish([completed, failed])
    publisher.publish_raw("job-outcomes", b"not an event", {})

    env = {**os.environ, **emulators.emulator_env(), "SUBSCRIPTION": subscription, "RUN_FOR_S": "8"}
    done = subprocess.run(
        [sys.executable, "-c", documented_example()], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = sorted(done.stdout.splitlines())
    assert isinstance(completed, events.JobCompleted) and isinstance(failed, events.JobFailed)
    assert f"{completed.job_id} completed: {completed.data.result.output_uri}" in lines
    assert f"{failed.job_id} failed: {failed.data.error.code}" in lines
    assert "skipped a message that is not a speakerline event: not_a_cloudevent" in lines
