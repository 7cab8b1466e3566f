"""Speaker-diarization engines.

Heavy dependencies (torch, pyannote.audio) are imported only when an engine is loaded, so
importing this package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (
    DiarizationEngine,
    DiarizationOptions,
    DiarizationResult,
    EngineUnavailable,
)
from .select import EngineConfig, EngineName, load, resolve_hf_token
from .vertex import VertexAIDispatcher, VertexConfig, build_custom_job_request

if TYPE_CHECKING:
    from .embedded import EmbeddedEngine
    from .pyannote import PyannoteEngine

__all__ = [
    "DiarizationEngine",
    "DiarizationOptions",
    "DiarizationResult",
    "EmbeddedEngine",
    "EngineConfig",
    "EngineName",
    "EngineUnavailable",
    "PyannoteEngine",
    "VertexAIDispatcher",
    "VertexConfig",
    "build_custom_job_request",
    "load",
    "resolve_hf_token",
]


def __getattr__(name: str) -> Any:
    if name == "EmbeddedEngine":
        from .embedded import EmbeddedEngine

        return EmbeddedEngine
    if name == "PyannoteEngine":
        from .pyannote import PyannoteEngine

        return PyannoteEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
