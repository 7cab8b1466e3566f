"""Read side of the job documents the projector writes, for the CLI and ops: queries and human formatting.

Read-only by design: the projector is the only Firestore writer. Its fields are read through
`speakerline.jobdoc`, the reader the API's views share.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.cloud import firestore

from speakerline import jobdoc
from speakerline.jobs import EVENTS_SUBCOLLECTION, JOBS_COLLECTION


def get_job(client: firestore.Client, job_id: str) -> dict[str, Any] | None:
    snap = client.collection(JOBS_COLLECTION).document(job_id).get()
    return snap.to_dict() if snap.exists else None


def list_jobs(client: firestore.Client, status: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Most recently updated jobs first, optionally of one status."""
    query: Any = client.collection(JOBS_COLLECTION)
    if status:
        # Equality on status plus ordering on updated_at needs the composite index (status ASC, updated_at DESC)
        # in production; infra declares it. The emulator does not enforce indexes.
        query = query.where(filter=firestore.FieldFilter("status", "==", status.upper()))
    query = query.order_by("updated_at", direction=firestore.Query.DESCENDING).limit(limit)
    return [snap.to_dict() for snap in query.stream()]


def job_events(client: firestore.Client, job_id: str) -> list[dict[str, Any]]:
    """Every event applied to the job, oldest first (Firestore breaks ties by document name, i.e. event id)."""
    ref = client.collection(JOBS_COLLECTION).document(job_id).collection(EVENTS_SUBCOLLECTION)
    return [snap.to_dict() for snap in ref.order_by("time").stream()]


# --- formatting for humans --------------------------------------------------------------------------------------


def _ts(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")
    return "-" if value is None else str(value)


def _input_name(job: Mapping[str, Any]) -> str:
    source = jobdoc.input_of(job)
    return str(source.get("filename") or source.get("uri") or "")


def _summary_line(summary: Mapping[str, Any]) -> str:
    speakers = summary.get("num_speakers")
    duration = summary.get("duration_s")
    parts = []
    if speakers is not None:
        parts.append(f"{speakers} speaker{'s' if speakers != 1 else ''}")
    if summary.get("num_segments") is not None:
        parts.append(f"{summary['num_segments']} segments")
    if duration is not None:
        parts.append(f"{float(duration):.1f}s audio")
    if summary.get("speech_s") is not None:
        parts.append(f"{float(summary['speech_s']):.1f}s speech")
    return ", ".join(parts)


def format_progress(progress: Mapping[str, Any], width: int = 24) -> str:
    """A diarization progress report as a bar: `[#########...............]  38%  1368/3600 s audio, ~2 min left`."""
    fraction = min(1.0, max(0.0, float(progress.get("fraction") or 0.0)))
    filled = round(fraction * width)
    bar = f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%"
    details = []
    if progress.get("audio_s"):
        details.append(f"{float(progress.get('processed_audio_s') or 0):.0f}/{float(progress['audio_s']):.0f} s audio")
    eta = progress.get("eta_s")
    if eta is not None:
        eta = float(eta)
        details.append(f"~{eta:.0f} s left" if eta < 120 else f"~{eta / 60:.0f} min left")
    return f"{bar}  {', '.join(details)}" if details else bar


def format_job_line(job: Mapping[str, Any]) -> str:
    """One line per job for `speakerline jobs list`: id, status, last update, input, and the gist of the outcome."""
    status = str(job.get("status", "?"))
    tail = ""
    error = job.get("error")
    result = job.get("result")
    if status in ("FAILED", "REJECTED") and error:
        tail = f"{error.get('code')}: {error.get('message')}"
    elif result and result.get("summary"):
        tail = _summary_line(result["summary"])
    elif status == "DIARIZING" and job.get("progress"):
        tail = format_progress(job["progress"], width=12)
    fields = [str(job.get("job_id", "?")), f"{status:<10}", _ts(job.get("updated_at")), _input_name(job), tail]
    return "  ".join(f for f in fields if f).rstrip()


def format_job_detail(job: Mapping[str, Any]) -> str:
    """Everything a human asks about one job, for `speakerline jobs get`."""
    lines = [f"job       {job.get('job_id')}", f"status    {job.get('status')}"]
    request = jobdoc.request_of(job)
    if _input_name(job):
        lines.append(f"input     {jobdoc.input_of(job).get('uri', _input_name(job))}")
    if request.get("correlation_id"):
        lines.append(f"corr. id  {request['correlation_id']}")
    lines.append(f"created   {_ts(job.get('created_at'))}")
    lines.append(f"updated   {_ts(job.get('updated_at'))}")

    seen = jobdoc.stages_reached(job)
    if seen:
        lines.append("stages")
        lines.extend(f"  {label:<20}{_ts(at)}" for _, label, at in seen)

    engine = job.get("engine")
    if engine:
        lines.append(f"engine    {engine.get('name')} ({engine.get('model')}, {engine.get('device')})")
    attempts = (job.get("attempts") or {}).get("diarization")
    if attempts:
        lines.append(f"attempts  {attempts} diarization")
    if job.get("status") == "DIARIZING" and job.get("progress"):
        lines.append(f"progress  {format_progress(job['progress'])}")

    error = job.get("error")
    if error:
        # After a successful replay the failure stays on record, but it is no longer the outcome.
        label = "error" if job.get("status") in ("FAILED", "REJECTED") else "past error"
        retriable = "retriable" if error.get("retriable") else "not retriable"
        lines.append(f"{label:<9} {error.get('code')} at {error.get('stage')} ({retriable}): {error.get('message')}")

    result = job.get("result")
    if result:
        if result.get("summary"):
            lines.append(f"summary   {_summary_line(result['summary'])}")
            for speaker in result["summary"].get("speakers") or []:
                lines.append(
                    f"  {speaker.get('speaker'):<12}{float(speaker.get('talk_time_s', 0)):7.1f}s"
                    f"  {float(speaker.get('share', 0)) * 100:5.1f}%  {speaker.get('num_segments')} segments"
                )
        for fmt in jobdoc.result_formats(job):
            label = "output" if fmt == "json" else fmt
            lines.append(f"{label:<10}{jobdoc.result_uri(job, fmt)}")

    for n in job.get("notifications") or []:
        code = f" ({n['code']})" if n.get("code") else ""
        lines.append(f"notified  {n.get('channel')} {n.get('target')}: {n.get('status')}{code} at {_ts(n.get('at'))}")

    last = job.get("last_event")
    if last:
        lines.append(f"last      {last.get('type')} {last.get('id')} at {_ts(last.get('time'))}")
    lines.append(f"events    {job.get('event_count', 0)}")
    return "\n".join(lines)
