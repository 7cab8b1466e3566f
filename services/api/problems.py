"""RFC 9457 problem details: every error answer of the API is `application/problem+json` with a `code`, the same
machine-readable reason codes the events carry (`file_too_large`, `invalid_options`, ...), and a human `detail`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, Field

MEDIA_TYPE: Final = "application/problem+json"
TYPE_BASE: Final = "https://schemas.speakerline.io/problems/"

TITLES: Final[Mapping[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str = Field(description="A URI naming the kind of problem: the base URI plus `code`.")
    title: str = Field(description="The HTTP status' phrase.")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="What went wrong, for a person.")
    code: str = Field(description="Machine-readable reason code (the same codes the events carry).")
    instance: str | None = Field(None, description="The request path.")
    errors: list[dict[str, Any]] | None = Field(None, description="Per-field problems of an invalid request.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "type": TYPE_BASE + "file_too_large",
                    "title": "Unprocessable Content",
                    "status": 422,
                    "detail": "The file is 5120.0 MiB; the limit is 4096.0 MiB.",
                    "code": "file_too_large",
                    "instance": "/v1/uploads",
                }
            ]
        }
    }


class ApiError(Exception):
    """Raised by handlers; the app turns it into a problem answer."""

    def __init__(
        self, status: int, code: str, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = dict(headers or {})
        self.extra = extra

    def problem(self, instance: str | None = None) -> Problem:
        return problem(self.status, self.code, self.detail, instance, **self.extra)


def problem(status: int, code: str, detail: str, instance: str | None = None, **extra: Any) -> Problem:
    return Problem(
        type=TYPE_BASE + code,
        title=TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        code=code,
        instance=instance,
        **extra,
    )


def not_found(job_id: str) -> ApiError:
    # The same answer for a job that does not exist and for another producer's: ids reveal nothing.
    return ApiError(404, "not_found", f"No job {job_id} for this producer.")


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses (FastAPI `responses=`)."""
    return {
        status: {"model": Problem, "description": TITLES.get(status, "Error"), "content": {MEDIA_TYPE: {}}}
        for status in statuses
    }
