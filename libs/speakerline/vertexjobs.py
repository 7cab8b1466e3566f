"""Vertex AI's job service behind a small interface: the `Platform`'s `vertex_jobs` adapter, with which diarization
dispatches a job to a GPU custom job (tests give it a fake of the REST API)."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Protocol


class VertexJobs(Protocol):
    """The calls diarization's dispatcher makes of Vertex AI's job service (`aiplatform_v1.JobServiceClient`)."""

    def create_custom_job(self, *, request: Any, timeout: float) -> Any: ...

    def get_custom_job(self, *, name: str, timeout: float) -> Any: ...

    def cancel_custom_job(self, *, name: str, timeout: float) -> Any: ...


class VertexJobService:
    """`VertexJobs` on the Vertex AI API at `endpoint`, its client made on first use: a client needs credentials,
    and one that cannot be made fails the call (the dispatcher takes that as Vertex AI refusing the job) rather
    than the worker's start. An `http://` endpoint is a local fake of the REST API, called without credentials
    (tests only)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    @cached_property
    def _client(self) -> Any:
        from google.cloud import aiplatform_v1  # type: ignore[attr-defined,unused-ignore]

        if self.endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            return aiplatform_v1.JobServiceClient(
                transport="rest",
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": self.endpoint},
            )
        return aiplatform_v1.JobServiceClient(client_options={"api_endpoint": self.endpoint})  # pragma: no cover

    def create_custom_job(self, *, request: Any, timeout: float) -> Any:
        return self._client.create_custom_job(request=request, timeout=timeout)

    def get_custom_job(self, *, name: str, timeout: float) -> Any:
        return self._client.get_custom_job(name=name, timeout=timeout)

    def cancel_custom_job(self, *, name: str, timeout: float) -> Any:
        return self._client.cancel_custom_job(name=name, timeout=timeout)
