"""Post-processing handler: raw turns → output.json (lineage format), RTTM, WebVTT and job.completed."""

from __future__ import annotations

import json

from speakerline import events
from speakerline.timeline import parse_rttm
from postprocess import handlers
from postprocess.timeline_rules import PostprocessConfig


def test_completed_diarization_becomes_a_clean_result(blobs, example) -> None:
    data = example("diarization.completed")
    raw = [  # B's 0.2 s blip is noise; A's two turns 0.3 s apart are one turn
        {"speaker": "B", "start": 0.0, "end": 0.2, "duration": 0.2},
        {"speaker": "A", "start": 0.5, "end": 3.0, "duration": 2.5},
        {"speaker": "A", "start": 3.3, "end": 6.0, "duration": 2.7},
        {"speaker": "B", "start": 6.5, "end": 9.0, "duration": 2.5},
        {"speaker": "A", "start": 8.5, "end": 10.0, "duration": 1.5},
    ]
    blobs.put(data["result"]["turns_uri"], json.dumps({"segments": raw}).encode())
    data["audio"]["duration_s"] = 12.0
    event = events.new_event(handlers.COMPLETED_IN, data, source="//t")
    deps = handlers.PostprocessDeps(blobs, "results", "//speakerline/services/postprocess", PostprocessConfig())

    (out,) = handlers.on_diarization_completed(event, deps)
    assert out["type"] == handlers.JOB_COMPLETED
    result = events.data_of(out)["result"]
    job_id = data["job_id"]
    assert result["output_uri"] == f"gs://results/results/{job_id}/output.json"
    output = json.loads(blobs.read_bytes(result["output_uri"]))
    assert output["segments"] == [
        {"speaker": "SPEAKER_00", "start": 0.5, "end": 6.0, "duration": 5.5},
        {"speaker": "SPEAKER_01", "start": 6.5, "end": 9.0, "duration": 2.5},
        {"speaker": "SPEAKER_00", "start": 8.5, "end": 10.0, "duration": 1.5},
    ]
    summary = result["summary"]
    assert summary["num_speakers"] == 2 and summary["num_segments"] == 3
    assert summary["overlap_s"] == 0.5
    assert abs(sum(s["share"] for s in summary["speakers"]) - 1) < 0.01
    rttm = parse_rttm(blobs.read_bytes(result["rttm_uri"]).decode())[job_id]
    assert [t.speaker for t in rttm] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]
    vtt = blobs.read_bytes(result["vtt_uri"]).decode()
    assert vtt.startswith("WEBVTT") and "<v SPEAKER_01>" in vtt
    assert events.data_of(out)["request"] == data["request"]
    # The turns JSON has no exclusive timeline (an engine without one): it is derived from the clean segments.
    assert output["exclusive_segments"] == [
        {"speaker": "SPEAKER_00", "start": 0.5, "end": 6.0, "duration": 5.5},
        {"speaker": "SPEAKER_01", "start": 6.5, "end": 9.0, "duration": 2.5},
        {"speaker": "SPEAKER_00", "start": 9.0, "end": 10.0, "duration": 1.0},
    ]
    assert summary["num_exclusive_segments"] == 3
    assert len(rttm) == 3 and vtt.count("-->") == 3  # RTTM and WebVTT stay overlap-aware


def test_the_engines_exclusive_timeline_is_cleaned_and_labelled_like_the_segments(blobs, example) -> None:
    data = example("diarization.completed")
    raw = {
        "segments": [
            {"speaker": "ghost", "start": 0.0, "end": 0.1, "duration": 0.1},  # a phantom: cleaned away
            {"speaker": "spk_7", "start": 1.0, "end": 5.0, "duration": 4.0},
            {"speaker": "spk_3", "start": 4.0, "end": 9.0, "duration": 5.0},
        ],
        "exclusive_segments": [  # the engine's own choice (spk_7 keeps the overlap), fragmented at a breath
            {"speaker": "ghost", "start": 0.0, "end": 0.1, "duration": 0.1},
            {"speaker": "spk_7", "start": 1.0, "end": 2.9, "duration": 1.9},
            {"speaker": "spk_7", "start": 3.1, "end": 5.0, "duration": 1.9},
            {"speaker": "spk_3", "start": 5.0, "end": 9.0, "duration": 4.0},
        ],
    }
    blobs.put(data["result"]["turns_uri"], json.dumps(raw).encode())
    event = events.new_event(handlers.COMPLETED_IN, data, source="//t")
    deps = handlers.PostprocessDeps(blobs, "results", "//speakerline/services/postprocess", PostprocessConfig())

    (out,) = handlers.on_diarization_completed(event, deps)
    result = events.data_of(out)["result"]
    output = json.loads(blobs.read_bytes(result["output_uri"]))
    assert output["segments"] == [
        {"speaker": "SPEAKER_00", "start": 1.0, "end": 5.0, "duration": 4.0},
        {"speaker": "SPEAKER_01", "start": 4.0, "end": 9.0, "duration": 5.0},
    ]
    assert output["exclusive_segments"] == [  # not the derived one, which would give the overlap to SPEAKER_01
        {"speaker": "SPEAKER_00", "start": 1.0, "end": 5.0, "duration": 4.0},
        {"speaker": "SPEAKER_01", "start": 5.0, "end": 9.0, "duration": 4.0},
    ]
    assert output["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    assert result["summary"]["num_exclusive_segments"] == 2 and result["summary"]["num_segments"] == 2
