"""The bucket layout: the Cloud Storage object names of a job, in the uploads, work and results buckets.

The only place an object name of the pipeline is written: ingest, diarization, post-processing, the API (which
signs uploads and deletes a job's objects) and the CLI (which uploads submissions) all ask `JobPaths`. The bucket
names themselves come from `Settings.bucket` (they differ per deployment); the names within them do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from speakerline.uploads import safe_file_name

#: The formats post-processing writes to the results bucket, each as `output.<format>`.
RESULT_FORMATS: Final = ("json", "rttm", "vtt")


@dataclass(frozen=True)
class JobPaths:
    """Where the objects of job `job_id` are, as object names (with `storage.uri(bucket, name)`, a URI)."""

    job_id: str

    # --- uploads bucket ---------------------------------------------------------------------------------------

    @property
    def upload_folder(self) -> str:
        """The folder of an API upload: one per job, so that an upload's name never collides."""
        return f"api/{self.job_id}/"

    def upload(self, file_name: str) -> str:
        """Where the API puts a signed upload of the producer's `file_name` (made safe)."""
        return self.upload_folder + safe_file_name(file_name)

    # --- work bucket ------------------------------------------------------------------------------------------

    @property
    def work_folder(self) -> str:
        return f"jobs/{self.job_id}/"

    @property
    def normalized_audio(self) -> str:
        """Ingest's 16 kHz mono WAV."""
        return self.work_folder + "audio.wav"

    @property
    def raw_turns(self) -> str:
        """The engine's turns as JSON (diarization)."""
        return self.work_folder + "turns.json"

    @property
    def raw_rttm(self) -> str:
        """The engine's turns as RTTM (diarization)."""
        return self.work_folder + "raw.rttm"

    # --- results bucket ---------------------------------------------------------------------------------------

    @property
    def results_folder(self) -> str:
        return f"results/{self.job_id}/"

    def result(self, fmt: str) -> str:
        """The post-processed timeline in `fmt` (one of `RESULT_FORMATS`)."""
        if fmt not in RESULT_FORMATS:
            raise ValueError(f"unknown result format {fmt!r}; expected one of {RESULT_FORMATS}")
        return f"{self.results_folder}output.{fmt}"


def submission(token: str, file_name: str) -> str:
    """Where the CLI uploads a file it submits (the job id is derived from the object afterwards, so this folder is
    named by a fresh `token`, not by the job)."""
    return f"submissions/{token}/{file_name}"
