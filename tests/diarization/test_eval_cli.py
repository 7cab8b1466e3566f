"""`speakerline eval` end to end: the CLI runs the diarization evaluation
(`speakerline_tools.evaluation`) in its own process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REAL_DEV = Path(__file__).resolve().parents[1] / "data" / "real-dev"


def speakerline(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYANNOTE_METRICS_ENABLED": "false", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "speakerline_tools.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.engine
def test_eval_one_real_file_as_json(tmp_path: Path) -> None:
    for suffix in (".flac", ".rttm"):
        shutil.copy(REAL_DEV / f"ami_trn03{suffix}", tmp_path)  # 2 speakers, 30 s: a clear case

    done = speakerline("eval", str(tmp_path), "--engine", "embedded", "--json", "--max-der", "0.5")

    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["engine"] == "embedded" and doc["num_speakers_from_reference"] is False
    (row,) = doc["files"]
    assert row["file"] == "ami_trn03" and row["audio"] == "ami_trn03.flac"
    assert row["duration_s"] == pytest.approx(30.0, abs=0.01)
    assert row["speakers_reference"] == 2 and row["turns"] > 0
    assert 0.0 <= row["der"] <= 0.5
    assert row["der"] == pytest.approx(row["missed_detection"] + row["false_alarm"] + row["confusion"], abs=1e-5)
    assert row["rtf"] > 0
    assert doc["overall"]["files"] == 1 and doc["overall"]["der"] == pytest.approx(row["der"])
    assert doc["passed"] is True


@pytest.mark.slow
def test_eval_of_an_empty_directory_fails_cleanly(tmp_path: Path) -> None:
    done = speakerline("eval", str(tmp_path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert "no audio file with a reference RTTM" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_eval_of_a_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    done = speakerline("eval", str(tmp_path / "nowhere"), "--json")
    assert done.returncode == 2
    assert "no such directory" in done.stderr and "Traceback" not in done.stderr
