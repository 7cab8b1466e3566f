"""The one way to get a diarization engine: `load(name, settings)`, which picks an engine and loads it through its
``from_pretrained`` (the service's wiring, the Vertex AI job, ``speakerline eval`` and the benchmarks all call it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast, get_args

import structlog

from speakerline.secrets import SecretManagerVersions
from speakerline.settings import DEFAULT_DIARIZATION_DEVICE, DEFAULT_PYANNOTE_MODEL, Settings

from .base import DiarizationEngine, EngineUnavailable

__all__ = ["EngineConfig", "EngineName", "load", "resolve_hf_token"]

log = structlog.get_logger()

EngineName = Literal["auto", "pyannote", "embedded", "vertex"]

#: ``fetch(resource_name) -> secret value`` (Secret Manager access)
SecretFetcher = Callable[[str], str]
PyannoteLoader = Callable[["EngineConfig", str | None], DiarizationEngine]
EmbeddedLoader = Callable[["EngineConfig"], DiarizationEngine]


@dataclass(frozen=True)
class EngineConfig:
    """Diarization engine settings.

    ``engine``: ``auto`` tries pyannote when it has something to load (a token, or a local
    directory / ``gs://`` model source) and falls back to ``embedded``; ``vertex`` means this
    process dispatches jobs (see :class:`.vertex.VertexAIDispatcher`) instead of diarizing.
    """

    engine: EngineName = "auto"
    pyannote_model: str = DEFAULT_PYANNOTE_MODEL
    hf_token: str | None = None
    #: Secret Manager resource name holding the HF token (used when ``hf_token`` is unset)
    hf_token_secret: str | None = None
    device: str = DEFAULT_DIARIZATION_DEVICE
    cache_dir: Path | None = None
    embedded_weights_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.engine not in get_args(EngineName):
            raise ValueError(f"unknown engine {self.engine!r}; expected one of {get_args(EngineName)}")

    def __repr__(self) -> str:  # never print the token
        token = "***" if self.hf_token else None
        return (
            f"EngineConfig(engine={self.engine!r}, pyannote_model={self.pyannote_model!r}, "
            f"hf_token={token!r}, hf_token_secret={self.hf_token_secret!r}, "
            f"device={self.device!r}, cache_dir={self.cache_dir!r}, "
            f"embedded_weights_dir={self.embedded_weights_dir!r})"
        )

    @property
    def pyannote_source_is_local(self) -> bool:
        """A local directory or a gs:// mirror needs no Hugging Face token."""
        return self.pyannote_model.startswith("gs://") or Path(self.pyannote_model).exists()

    @classmethod
    def from_settings(cls, settings: Settings, engine: str | None = None) -> EngineConfig:
        """The engine settings of the service's `Settings` (environment names as in docs/configuration.md);
        `engine`, when given, instead of the settings' engine.

        ``engine`` (``SPEAKERLINE_ENGINE``; ``auto`` unless ``vertex_dispatch`` is true, then ``vertex``),
        ``pyannote_model``, ``hf_token`` (``SPEAKERLINE_HF_TOKEN`` or ``HF_TOKEN``), ``hf_token_secret``
        (Secret Manager version resource name), ``diarization_device``, ``model_cache_dir``,
        ``embedded_weights_dir``.
        """
        if engine is None:
            engine = settings.engine or ("vertex" if settings.vertex_dispatch else "auto")
            if engine not in get_args(EngineName):
                raise ValueError(f"SPEAKERLINE_ENGINE={engine!r} is not one of {get_args(EngineName)}")
        return cls(
            engine=cast(EngineName, engine),
            pyannote_model=settings.pyannote_model or DEFAULT_PYANNOTE_MODEL,
            hf_token=settings.hf_token or None,
            hf_token_secret=settings.hf_token_secret or None,
            device=settings.diarization_device or DEFAULT_DIARIZATION_DEVICE,
            cache_dir=settings.model_cache_dir,
            embedded_weights_dir=settings.embedded_weights_dir,
        )


def resolve_hf_token(config: EngineConfig, fetcher: SecretFetcher | None = None) -> str | None:
    """The HF token: ``config.hf_token``, else the Secret Manager secret, else ``None``."""
    if config.hf_token:
        return config.hf_token
    if not config.hf_token_secret:
        return None
    try:
        return (fetcher or SecretManagerVersions().access)(config.hf_token_secret).strip() or None
    except ImportError as exc:
        raise EngineUnavailable("google-cloud-secret-manager is needed to read the HF token") from exc
    except Exception as exc:
        raise EngineUnavailable(
            f"cannot read HF token secret {config.hf_token_secret}: {type(exc).__name__}: {exc}"
        ) from exc


def _load_pyannote(config: EngineConfig, token: str | None) -> DiarizationEngine:
    from .pyannote import PyannoteEngine

    return PyannoteEngine.from_pretrained(
        config.pyannote_model, token=token, device=config.device, cache_dir=config.cache_dir
    )


def _load_embedded(config: EngineConfig) -> DiarizationEngine:
    from .embedded import EmbeddedEngine

    return EmbeddedEngine.from_pretrained(config.embedded_weights_dir, device=config.device, cache_dir=config.cache_dir)


def load(
    name: str,
    settings: Settings,
    *,
    secret_fetcher: SecretFetcher | None = None,
    pyannote_loader: PyannoteLoader | None = None,
    embedded_loader: EmbeddedLoader | None = None,
) -> DiarizationEngine:
    """Engine `name` (``auto``, ``pyannote`` or ``embedded``), loaded with the rest of its configuration (model,
    token, device, caches) from `settings` (the loaders are injectable for tests).

    ``auto`` is pyannote when it has something to load (a token, or a local directory / ``gs://`` model source)
    and loads, else the embedded engine. Raises :class:`EngineUnavailable` when the requested engine (or, for
    ``auto``, both engines) cannot be loaded, and ``ValueError`` for an unknown name and for ``vertex``, which
    dispatches jobs rather than diarizing in this process.
    """
    config = EngineConfig.from_settings(settings, name)
    load_pyannote = pyannote_loader or _load_pyannote
    load_embedded = embedded_loader or _load_embedded

    if config.engine == "vertex":
        raise ValueError(
            "engine 'vertex' does not diarize in-process: submit jobs with "
            "VertexAIDispatcher; the Vertex worker itself runs engine 'pyannote' or 'auto'"
        )
    if config.engine == "embedded":
        return load_embedded(config)
    if config.engine == "pyannote":
        return load_pyannote(config, resolve_hf_token(config, secret_fetcher))

    # auto
    try:
        token = resolve_hf_token(config, secret_fetcher)
    except EngineUnavailable as exc:
        log.warning("diarization.pyannote_skipped", reason=str(exc))
        token = None
    if token is None and not config.pyannote_source_is_local:
        log.info(
            "diarization.pyannote_skipped",
            reason="no Hugging Face token and no local or gs:// model source",
            model=config.pyannote_model,
        )
    else:
        try:
            return load_pyannote(config, token)
        except EngineUnavailable as exc:
            log.warning(
                "diarization.pyannote_unavailable",
                reason=str(exc),
                fallback="embedded",
                model=config.pyannote_model,
            )
    return load_embedded(config)
