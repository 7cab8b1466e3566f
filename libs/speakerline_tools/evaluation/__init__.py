"""Diarization quality of an engine on a directory of audio files with reference RTTMs (`speakerline eval`).

Every ``<stem>.rttm`` in the directory is paired with the audio file of the same stem (any format ingest accepts:
WAV, FLAC, MP3, Ogg, M4A...; recognised by content or by a usual audio extension). The audio is normalized exactly
like the ingest service does (:func:`speakerline.audio.normalize_file`: 16 kHz mono PCM16 WAV), the engine
diarizes the WAV, and the result is scored with pyannote.metrics'
``DiarizationErrorRate(collar=0.0, skip_overlap=False)`` over the whole file (UEM 0 to the end of the audio): no
collar, overlapped speech scored. DER and its parts (missed detection, false alarm, confusion) are fractions of the
reference speech; the overall figures sum the errors and the reference speech of all files.

The reference of a file is the RTTM's own content: when the RTTM holds a single uri it is used whatever its name,
otherwise the uri equal to the file stem.

API (usable from tests)::

    report = evaluate_dir(engine, Path("tests/data/real-dev"), num_speakers_from_reference=False)
    print(format_report(report))
    report.der, report.files[0].der, report.exact_speaker_counts, report.to_dict()

Command line (``speakerline eval``, which calls :func:`add_arguments` and :func:`run` in-process)::

    speakerline eval DIR [--engine auto|pyannote|embedded|vertex] [--num-speakers-from-reference] [--json]
                         [--max-der X]

Exit codes: 0 evaluated (and overall DER within ``--max-der`` when given), 1 overall DER above ``--max-der``,
2 the directory cannot be evaluated (missing, no pairs, unreadable audio or RTTM, engine unavailable).
"""

from speakerline_tools.evaluation.command import (
    DESCRIPTION,
    EXIT_DER_ABOVE_MAX,
    EXIT_INPUT_ERROR,
    EXIT_OK,
    add_arguments,
    run,
)
from speakerline_tools.evaluation.inputs import EvalError, EvalPair, PreparedFile, find_pairs, load_reference, prepare
from speakerline_tools.evaluation.report import SCORING, ErrorParts, EvalReport, FileScore, format_report
from speakerline_tools.evaluation.scoring import (
    TimedSpeaker,
    evaluate_dir,
    evaluate_prepared,
    score_turns,
    timeline_der,
)

__all__ = [
    "DESCRIPTION",
    "EXIT_DER_ABOVE_MAX",
    "EXIT_INPUT_ERROR",
    "EXIT_OK",
    "SCORING",
    "ErrorParts",
    "EvalError",
    "EvalPair",
    "EvalReport",
    "FileScore",
    "PreparedFile",
    "TimedSpeaker",
    "add_arguments",
    "evaluate_dir",
    "evaluate_prepared",
    "find_pairs",
    "format_report",
    "load_reference",
    "prepare",
    "run",
    "score_turns",
    "timeline_der",
]
