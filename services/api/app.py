"""The HTTP front door: `create_app(wired)` builds the FastAPI application from the API's wiring (wiring.py).

It runs like every service, through the one start sequence of `speakerline.bootstrap`: `python -m speakerline.worker
api` (its topology entrypoint is `http`), or `uvicorn api.app:create_app --factory`.

Routes are thin: they authenticate, rate-limit, and call the plain functions of handlers.py; every error becomes
an RFC 9457 problem (problems.py). The studio (static/) is served at `/`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, cast

import structlog
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import handlers, problems
from .auth import Principal
from .events_stream import job_events, parse_last_event_id
from .problems import ApiError
from .schemas import (
    JOB_ID_PATTERN,
    Accepted,
    Format,
    Health,
    Job,
    JobList,
    JobRequest,
    Me,
    SignedUrl,
    Status,
    Upload,
    UploadRequest,
)
from .wiring import Wired

STATIC = Path(__file__).with_name("static")
log = structlog.get_logger("api")

DESCRIPTION = """\
Diarize audio ("who spoke when") over HTTP. Upload with a signed URL (`POST /v1/uploads`, then PUT the file) or
announce an object already in the uploads bucket (`POST /v1/jobs`); follow the job live
(`GET /v1/jobs/{id}/events`, Server-Sent Events) and fetch its result (`GET /v1/jobs/{id}`, `.../result`).

Authenticate with `Authorization: Bearer <API key>` (`speakerline apikey create --producer NAME`). Errors are
RFC 9457 problem details (`application/problem+json`) whose `code` is the reason code the events carry.
"""

JobId = Annotated[str, PathParam(pattern=JOB_ID_PATTERN, max_length=64, examples=["job_3f9c2a7b1d4e5f60718293a4"])]
AUTH_ERRORS = problems.responses(401, 403, 429)
JOB_ERRORS = problems.responses(401, 403, 404, 422, 429)


_bearer = HTTPBearer(auto_error=False, description="An API key (slk_...) or, on Cloud Run, a Google ID token.")


def _principal(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller (401 without valid credentials), after spending one of its rate-limit tokens (429)."""
    wired: Wired = request.app.state.wired
    caller = wired.authenticate(request.headers.get("authorization"))
    wired.limiter.take(caller.rate_key)
    request.state.producer = caller.producer
    return caller


Caller = Annotated[Principal, Depends(_principal)]


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, whether or not they declare a Content-Length."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, send)
            return
        received = 0
        refused = False

        async def limited() -> Message:
            nonlocal received, refused
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes and not refused:
                # Answer now and tell the app the client left: an exception here would reach the app as a
                # body parse error (400), not as what it is.
                refused = True
                await self._too_large(scope, send)
                return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited, unless_refused)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        detail = f"The request body is over {self.max_bytes} bytes (audio goes to the signed upload URL)."
        response = _problem_response(ApiError(413, "request_too_large", detail), scope.get("path"))
        await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _problem_response(error: ApiError, instance: str | None) -> JSONResponse:
    body = error.problem(instance).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=error.status, media_type=problems.MEDIA_TYPE, headers=error.headers)


def create_app(wired: Wired | None = None) -> FastAPI:
    """The app of `wired`; without it (`uvicorn --factory`), the API started by `speakerline.bootstrap.start` from
    the environment's settings, as every service is."""
    if wired is None:
        from speakerline import bootstrap

        return cast(FastAPI, bootstrap.http_app("api"))
    deps = wired.deps
    settings = wired.settings

    app = FastAPI(
        title="speakerline API",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.state.wired = wired

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return _problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in errors[:5])
        if errors and errors[0]["type"] == "json_invalid":  # its loc is a character offset, not a field
            detail = f"The body is not valid JSON (at character {errors[0]['loc'][-1]})."
        return _problem_response(ApiError(422, "invalid_request", detail or "Invalid request.", errors=errors), None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {400: "malformed_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        error = ApiError(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))
        return _problem_response(error, request.url.path)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("request_failed", path=request.url.path, error=type(exc).__name__)
        return _problem_response(ApiError(500, "internal_error", "Something went wrong on our side."), None)

    @app.middleware("http")
    async def _access_log(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        if request.url.path != "/health":
            log.info(
                "request",
                method=request.method,
                path=request.url.path,
                status=response.status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                producer=getattr(request.state, "producer", None),
                job_id=request.path_params.get("job_id"),
            )
        return response

    @app.get("/health", response_model=Health, tags=["meta"])
    def health() -> Health:
        return Health()

    @app.get("/v1/me", response_model=Me, responses=AUTH_ERRORS, tags=["meta"])
    def me(caller: Caller) -> Me:
        """Who the credentials are: the studio's sign-in check."""
        return Me(producer=caller.producer, key_id=caller.key_id)

    @app.post(
        "/v1/uploads",
        status_code=201,
        response_model=Upload,
        responses=problems.responses(400, 401, 403, 413, 422, 429),
        tags=["jobs"],
    )
    def create_upload(body: UploadRequest, caller: Caller) -> Upload:
        """A signed URL to PUT one audio file to; the upload starts job `job_id`."""
        return handlers.create_upload(body, caller, deps)

    @app.post(
        "/v1/jobs",
        status_code=202,
        response_model=Accepted,
        responses=problems.responses(400, 401, 403, 409, 413, 422, 429),
        tags=["jobs"],
    )
    def submit_job(
        body: JobRequest,
        caller: Caller,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                min_length=1,
                max_length=255,
                description="Repeat a request safely: the same key and body give the same job, published once.",
            ),
        ] = None,
    ) -> Accepted:
        """Diarize an object already in the uploads bucket."""
        return handlers.submit_job(body, idempotency_key, caller, deps)

    @app.get("/v1/jobs", response_model=JobList, responses=problems.responses(400, 401, 403, 422, 429), tags=["jobs"])
    def list_jobs(
        caller: Caller,
        status: Annotated[Status | None, Query(description="Only jobs in this state.")] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        page_token: Annotated[
            str | None, Query(max_length=64, description="next_page_token of the previous page.")
        ] = None,
    ) -> dict[str, Any]:
        """This producer's jobs, newest first."""
        return handlers.list_jobs(caller, status, limit, page_token, deps)

    @app.get("/v1/jobs/{job_id}", response_model=Job, responses=JOB_ERRORS, tags=["jobs"])
    def get_job(job_id: JobId, caller: Caller) -> dict[str, Any]:
        """The job, with its segments once COMPLETED."""
        return handlers.get_job(job_id, caller, deps)

    @app.get(
        "/v1/jobs/{job_id}/events",
        responses={
            200: {"description": "A stream of `job` events (data: the Job).", "content": {"text/event-stream": {}}},
            **JOB_ERRORS,
        },
        response_class=Response,
        tags=["jobs"],
    )
    async def job_stream(
        job_id: JobId,
        caller: Caller,
        last_event_id: Annotated[
            str | None, Header(alias="Last-Event-ID", max_length=32, description="The last id received.")
        ] = None,
    ) -> Response:
        """The job's states live, one event per change, ending at a terminal state."""
        _, claim = await run_in_threadpool(handlers.owned, job_id, caller, deps)
        seen = parse_last_event_id(last_event_id)
        stream = job_events(job_id, claim, seen, deps.store, settings.api_sse_max_s)
        return EventSourceResponse(stream, ping=int(settings.api_sse_ping_s), headers={"Cache-Control": "no-store"})

    def _signed(url: str, fmt: str, redirect: bool) -> Response | SignedUrl:
        if redirect:
            return RedirectResponse(url, status_code=307)
        return SignedUrl(url=url, format=fmt, expires_in=deps.config.result_url_ttl_s)

    redirect_responses: dict[int | str, dict[str, Any]] = {
        307: {"description": "Redirect to a short-lived signed URL."},
        **problems.responses(401, 403, 404, 409, 410, 422, 429),
    }

    @app.get("/v1/jobs/{job_id}/result", response_model=SignedUrl, responses=redirect_responses, tags=["jobs"])
    def result(
        job_id: JobId,
        caller: Caller,
        format: Annotated[Format, Query(description="json (output.json), rttm or vtt (WebVTT).")] = "json",
        redirect: Annotated[bool, Query(description="false: answer the URL as JSON instead.")] = True,
    ) -> Any:
        """The result file, through a short-lived signed URL."""
        return _signed(handlers.signed_result(job_id, format, caller, deps), format, redirect)

    @app.get("/v1/jobs/{job_id}/audio", response_model=SignedUrl, responses=redirect_responses, tags=["jobs"])
    def audio(
        job_id: JobId,
        caller: Caller,
        redirect: Annotated[bool, Query(description="false: answer the URL as JSON instead.")] = True,
    ) -> Any:
        """The producer's original file, through a short-lived signed URL (the studio's player)."""
        return _signed(handlers.signed_audio(job_id, caller, deps), "audio", redirect)

    @app.delete("/v1/jobs/{job_id}", status_code=202, response_model=Accepted, responses=JOB_ERRORS, tags=["jobs"])
    def delete_job(job_id: JobId, caller: Caller) -> Accepted:
        """Delete the job's audio and results; the job stays listed as DELETED."""
        return handlers.delete_job(job_id, caller, deps)

    if STATIC.is_dir():
        app.mount("/", StaticFiles(directory=STATIC, html=True), name="studio")
    # A SERVER span per request (OpenTelemetry's FastAPI instrumentation): the audio.uploaded a request publishes
    # carries it, so an API job's trace starts at the request. No-op unless telemetry is configured.
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="health")
    return app
