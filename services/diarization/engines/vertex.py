"""Dispatch one diarization job to a Vertex AI CustomJob on a GPU worker.

Nothing is diarized in-process: :func:`build_custom_job_request` (pure, unit-tested) builds a
``CreateCustomJobRequest`` for one worker pool (``g2-standard-8`` + 1x ``NVIDIA_L4`` by
default) running the same worker image with ``python -m speakerline.worker diarization
--envelope FILE``, and :class:`VertexAIDispatcher` submits it through the Vertex AI job client it
is given (the Platform's ``vertex_jobs``, :class:`speakerline.vertexjobs.VertexJobService`).

The event travels as the Pub/Sub push envelope the push function would receive for the
diarization subscription (:func:`push_envelope`: binary-mode CloudEvent, first delivery), so the
job handles it exactly as a push would. The envelope JSON travels in the job's environment
(``SPEAKERLINE_ENVELOPE_JSON``); the container command writes it to a file and execs the
worker on it, so no staging bucket is needed and nothing is interpolated into a shell string.

Secrets never travel in the request: the worker receives the *resource name* of the
Hugging Face token secret (``SPEAKERLINE_HF_TOKEN_SECRET``) and reads it from Secret Manager
itself (see :func:`.select.resolve_hf_token`).

When the GPU path is down the job must still complete: :meth:`VertexAIDispatcher.submit` raises
:class:`.base.DispatchUnavailable` (``gpu_dispatch_refused``) when the create call fails (quota,
permissions, transport or API errors), and :meth:`VertexAIDispatcher.wait_started` raises it
(``gpu_start_timeout``, after cancelling the job; ``gpu_start_failed`` when the job ended before it
ever ran) when the job does not reach ``JOB_STATE_RUNNING`` within ``start_timeout_s``. The
dispatching worker then runs the job on its own CPU engine. A job that fails after it started is
not the dispatcher's business: the job's own handler reports it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import structlog

from speakerline import events
from speakerline.vertexjobs import VertexJobs

from .base import DispatchUnavailable
from .vertex_job import (
    DEFAULT_START_TIMEOUT_S,
    ENV_ENGINE,
    ENV_HF_TOKEN_SECRET,
    ENV_PYANNOTE_MODEL,
    VertexConfig,
    build_custom_job_request,
    push_envelope,
    sanitize_label,
)

__all__ = [
    "DEFAULT_START_TIMEOUT_S",
    "ENV_ENGINE",
    "ENV_HF_TOKEN_SECRET",
    "ENV_PYANNOTE_MODEL",
    "GPU_DISPATCH_REFUSED",
    "GPU_START_FAILED",
    "GPU_START_TIMEOUT",
    "VertexAIDispatcher",
    "VertexConfig",
    "build_custom_job_request",
    "push_envelope",
    "sanitize_label",
]

log = structlog.get_logger()

#: why the worker ran a job itself (the engine's ``fallback.reason`` in the events; the schemas list them)
GPU_DISPATCH_REFUSED = "gpu_dispatch_refused"
GPU_START_TIMEOUT = "gpu_start_timeout"
GPU_START_FAILED = "gpu_start_failed"
#: the client's own default is no timeout at all: a hung call must not hold the job forever
CALL_TIMEOUT_S = 60.0
#: the job ran (or is running): from here on it reports itself
_STARTED_STATES = frozenset({"JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"})
#: the job is over (or going) without having run, unless its ``start_time`` says otherwise
_ENDED_STATES = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})


def _state_name(job: Any) -> str:
    """``JOB_STATE_RUNNING`` and so on, from a proto enum (or a plain string)."""
    state = getattr(job, "state", None)
    return str(getattr(state, "name", state) or "JOB_STATE_UNSPECIFIED")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class VertexAIDispatcher:
    """Submits one Vertex AI CustomJob per diarization job (runs nowhere near here)."""

    name = "vertex"

    def __init__(
        self,
        config: VertexConfig,
        client: VertexJobs,
        *,
        subscription: str,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._client = client
        #: the subscription the job pretends the event came through (the diarization service's, in the topology)
        self.subscription = subscription
        self._clock = clock
        self._sleep = sleep

    @property
    def model(self) -> str:
        return self.config.pyannote_model

    @property
    def accelerator(self) -> str:
        """Where the job runs, e.g. ``NVIDIA_L4`` (``cpu`` without accelerators)."""
        if self.config.accelerator_count <= 0:
            return "cpu"
        suffix = f"x{self.config.accelerator_count}" if self.config.accelerator_count > 1 else ""
        return f"{self.config.accelerator_type}{suffix}"

    def dispatch(self, event: events.AudioIngested) -> str:
        """Submit a CustomJob for one ``audio.ingested`` event; return the job's name."""
        envelope = json.dumps(push_envelope(event, self.subscription))
        return self.submit(event.data.job_id, envelope, event_id=event.id)

    def submit(self, job_id: str, envelope_json: str, *, event_id: str | None = None) -> str:
        """Submit the job; return the CustomJob resource name. Raises :class:`DispatchUnavailable` when Vertex AI
        does not take it (any error of the client or of the call: quota, permissions, network, API)."""
        request = build_custom_job_request(self.config, job_id=job_id, envelope_json=envelope_json, event_id=event_id)
        try:
            response = self._client.create_custom_job(request=request, timeout=CALL_TIMEOUT_S)
        except Exception as exc:
            raise DispatchUnavailable(
                self.name, GPU_DISPATCH_REFUSED, f"Vertex AI did not create the custom job: {_describe(exc)}"
            ) from exc
        name = str(getattr(response, "name", ""))
        log.info(
            "diarization.vertex_job_submitted",
            job_id=job_id,
            custom_job=name,
            machine_type=self.config.machine_type,
            accelerator=self.config.accelerator_type,
        )
        return name

    def wait_started(self, name: str, *, job_id: str) -> None:
        """Return once the custom job ``name`` runs (or has run); raise :class:`DispatchUnavailable` when it has
        not started within ``config.start_timeout_s`` (the job is cancelled first, best effort) or ended without
        ever running. A failed look at the job is logged and retried until the deadline."""
        deadline = self._clock() + self.config.start_timeout_s
        state = "JOB_STATE_UNSPECIFIED"
        while True:
            try:
                job = self._client.get_custom_job(name=name, timeout=CALL_TIMEOUT_S)
            except Exception as exc:
                log.warning("diarization.vertex_job_poll_failed", job_id=job_id, custom_job=name, error=_describe(exc))
            else:
                state = _state_name(job)
                # start_time is set once the job first ran: a job that ran and failed reports itself
                if state in _STARTED_STATES or getattr(job, "start_time", None):
                    log.info("diarization.vertex_job_started", job_id=job_id, custom_job=name, state=state)
                    return
                if state in _ENDED_STATES:
                    raise DispatchUnavailable(
                        self.name,
                        GPU_START_FAILED,
                        f"the Vertex AI custom job {name} ended ({state}) before it started",
                    )
            left = deadline - self._clock()
            if left <= 0:
                break
            self._sleep(min(self.config.poll_s, left))
        self._cancel(name, job_id=job_id)
        raise DispatchUnavailable(
            self.name,
            GPU_START_TIMEOUT,
            f"the Vertex AI custom job {name} did not start within {self.config.start_timeout_s:g} s "
            f"(last state {state}); it was cancelled",
        )

    def _cancel(self, name: str, *, job_id: str) -> None:
        """Best effort: a job left pending would start later and diarize the job a second time."""
        try:
            self._client.cancel_custom_job(name=name, timeout=CALL_TIMEOUT_S)
        except Exception as exc:
            log.warning("diarization.vertex_job_cancel_failed", job_id=job_id, custom_job=name, error=_describe(exc))
        else:
            log.info("diarization.vertex_job_cancelled", job_id=job_id, custom_job=name)
