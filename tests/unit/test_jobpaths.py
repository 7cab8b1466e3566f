import pytest

from speakerline import jobpaths
from speakerline.jobpaths import JobPaths

JOB = "job_0123456789"


def test_an_upload_is_one_folder_per_job_with_a_safe_name() -> None:
    paths = JobPaths(JOB)
    assert paths.upload("/tmp/My Talk.wav") == "api/job_0123456789/My_Talk.wav"
    assert paths.upload("") == "api/job_0123456789/audio"
    long = paths.upload("z" * 400 + ".mp3")
    assert long.startswith(paths.upload_folder) and long.endswith(".mp3")
    assert len(long.rsplit("/", 1)[1]) <= 200


def test_the_work_and_results_objects_of_a_job() -> None:
    paths = JobPaths(JOB)
    assert paths.normalized_audio == "jobs/job_0123456789/audio.wav"
    assert paths.raw_turns == "jobs/job_0123456789/turns.json"
    assert paths.raw_rttm == "jobs/job_0123456789/raw.rttm"
    assert [paths.result(fmt) for fmt in jobpaths.RESULT_FORMATS] == [
        "results/job_0123456789/output.json",
        "results/job_0123456789/output.rttm",
        "results/job_0123456789/output.vtt",
    ]


def test_every_object_of_a_job_is_inside_its_folders() -> None:
    paths = JobPaths(JOB)
    assert paths.upload("a.wav").startswith(paths.upload_folder)
    for name in (paths.normalized_audio, paths.raw_turns, paths.raw_rttm):
        assert name.startswith(paths.work_folder)
    for fmt in jobpaths.RESULT_FORMATS:
        assert paths.result(fmt).startswith(paths.results_folder)


def test_an_unknown_result_format_is_refused() -> None:
    with pytest.raises(ValueError, match="pdf"):
        JobPaths(JOB).result("pdf")


def test_a_cli_submission_is_named_by_its_token() -> None:
    assert jobpaths.submission("9a4e", "talk.wav") == "submissions/9a4e/talk.wav"
