"""Engine selection: which engine `load` returns for each name and configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from diarization.engines.base import (
    EngineUnavailable,
)
from diarization.engines.select import EngineConfig, load, resolve_hf_token
from speakerline.settings import Settings
from tests.fakes import ScriptedEngine


class Recorder:
    def __init__(self, pyannote_error: str | None = None) -> None:
        self.pyannote_calls: list[tuple[EngineConfig, str | None]] = []
        self.embedded_calls: list[EngineConfig] = []
        self.pyannote_error = pyannote_error

    def pyannote(self, config: EngineConfig, token: str | None) -> ScriptedEngine:
        self.pyannote_calls.append((config, token))
        if self.pyannote_error:
            raise EngineUnavailable(self.pyannote_error)
        return ScriptedEngine((), name="pyannote")

    def embedded(self, config: EngineConfig) -> ScriptedEngine:
        self.embedded_calls.append(config)
        return ScriptedEngine((), name="embedded")

    def load(self, name: str, settings: Settings, **kwargs: Any) -> Any:
        return load(name, settings, pyannote_loader=self.pyannote, embedded_loader=self.embedded, **kwargs)


def test_auto_without_token_or_local_model_uses_embedded_without_trying_pyannote() -> None:
    rec = Recorder()
    with capture_logs() as logs:
        engine = rec.load("auto", Settings())
    assert engine.name == "embedded"
    assert rec.pyannote_calls == []
    assert any(e["event"] == "diarization.pyannote_skipped" for e in logs)


def test_auto_with_token_uses_pyannote() -> None:
    rec = Recorder()
    engine = rec.load("auto", Settings(hf_token="hf_x"))
    assert engine.name == "pyannote"
    assert rec.pyannote_calls[0][1] == "hf_x"
    assert rec.embedded_calls == []


def test_auto_falls_back_to_embedded_and_logs_why() -> None:
    rec = Recorder(pyannote_error="gated repo, token lacks access")
    with capture_logs() as logs:
        engine = rec.load("auto", Settings(hf_token="hf_x"))
    assert engine.name == "embedded"
    warning = next(e for e in logs if e["event"] == "diarization.pyannote_unavailable")
    assert warning["log_level"] == "warning"
    assert "gated repo" in warning["reason"]
    assert warning["fallback"] == "embedded"


def test_auto_with_local_model_dir_tries_pyannote_without_token(tmp_path: Path) -> None:
    rec = Recorder()
    engine = rec.load("auto", Settings(pyannote_model=str(tmp_path)))
    assert engine.name == "pyannote"
    assert rec.pyannote_calls[0][1] is None


def test_auto_with_gcs_mirror_tries_pyannote_without_token() -> None:
    rec = Recorder()
    assert rec.load("auto", Settings(pyannote_model="gs://models/pyannote")).name == "pyannote"


def test_auto_token_from_secret_manager() -> None:
    rec = Recorder()
    fetched: list[str] = []

    def fetch(name: str) -> str:
        fetched.append(name)
        return "hf_from_secret"

    secret = "projects/p/secrets/hf/versions/latest"
    engine = rec.load("auto", Settings(hf_token_secret=secret), secret_fetcher=fetch)
    assert engine.name == "pyannote"
    assert fetched == [secret]
    assert rec.pyannote_calls[0][1] == "hf_from_secret"


def test_auto_secret_failure_falls_back_to_embedded() -> None:
    rec = Recorder()

    def fetch(name: str) -> str:
        raise PermissionError("denied")

    with capture_logs() as logs:
        engine = rec.load("auto", Settings(hf_token_secret="projects/p/secrets/hf"), secret_fetcher=fetch)
    assert engine.name == "embedded"
    assert any("denied" in str(e.get("reason")) for e in logs)


def test_explicit_pyannote_does_not_fall_back() -> None:
    rec = Recorder(pyannote_error="offline")
    with pytest.raises(EngineUnavailable, match="offline"):
        rec.load("pyannote", Settings(hf_token="hf_x"))
    assert rec.embedded_calls == []


def test_explicit_embedded() -> None:
    rec = Recorder()
    assert rec.load("embedded", Settings(hf_token="hf_x")).name == "embedded"
    assert rec.pyannote_calls == []


def test_vertex_is_not_an_in_process_engine() -> None:
    with pytest.raises(ValueError, match="VertexAIDispatcher"):
        Recorder().load("vertex", Settings())


def test_unknown_engine_rejected() -> None:
    with pytest.raises(ValueError, match="unknown engine"):
        EngineConfig(engine="whisper")  # type: ignore[arg-type]


def test_token_never_in_repr() -> None:
    assert "hf_secret_value" not in repr(EngineConfig(hf_token="hf_secret_value"))


def test_resolve_hf_token_prefers_explicit_token() -> None:
    def fetch(name: str) -> str:  # pragma: no cover - must not be called
        raise AssertionError

    assert resolve_hf_token(EngineConfig(hf_token="a", hf_token_secret="projects/p/secrets/s"), fetch) == "a"
    assert resolve_hf_token(EngineConfig()) is None


def test_from_settings() -> None:
    config = EngineConfig.from_settings(
        Settings(
            engine="pyannote",
            pyannote_model="pyannote/speaker-diarization-community-1",
            hf_token="hf_1",
            hf_token_secret="projects/p/secrets/hf/versions/latest",
            diarization_device="cpu",
            model_cache_dir=Path("/cache"),
            embedded_weights_dir=Path("/weights"),
        )
    )
    assert config.engine == "pyannote"
    assert config.pyannote_model == "pyannote/speaker-diarization-community-1"
    assert config.hf_token == "hf_1"
    assert config.hf_token_secret == "projects/p/secrets/hf/versions/latest"
    assert config.device == "cpu"
    assert config.cache_dir == Path("/cache")
    assert config.embedded_weights_dir == Path("/weights")


def test_from_settings_reads_the_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAKERLINE_ENGINE", "pyannote")
    monkeypatch.setenv("SPEAKERLINE_PYANNOTE_MODEL", "pyannote/speaker-diarization-community-1")
    monkeypatch.setenv("SPEAKERLINE_HF_TOKEN", "hf_1")
    monkeypatch.setenv("SPEAKERLINE_HF_TOKEN_SECRET", "projects/p/secrets/hf/versions/latest")
    monkeypatch.setenv("SPEAKERLINE_DIARIZATION_DEVICE", "cpu")
    monkeypatch.setenv("SPEAKERLINE_MODEL_CACHE_DIR", "/cache")
    monkeypatch.setenv("SPEAKERLINE_EMBEDDED_WEIGHTS_DIR", "/weights")
    config = EngineConfig.from_settings(Settings())
    assert (config.engine, config.pyannote_model, config.hf_token, config.device) == (
        "pyannote",
        "pyannote/speaker-diarization-community-1",
        "hf_1",
        "cpu",
    )
    assert config.hf_token_secret == "projects/p/secrets/hf/versions/latest"
    assert (config.cache_dir, config.embedded_weights_dir) == (Path("/cache"), Path("/weights"))


def test_from_settings_defaults_and_vertex_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPEAKERLINE_ENGINE", "SPEAKERLINE_VERTEX_DISPATCH", "SPEAKERLINE_HF_TOKEN", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    default = EngineConfig.from_settings(settings)
    assert (default.engine, default.pyannote_model, default.hf_token, default.device) == (
        "auto",  # no engine named: chosen by what is available
        settings.pyannote_model,
        None,
        settings.diarization_device,
    )
    monkeypatch.setenv("HF_TOKEN", "hf_2")
    assert EngineConfig.from_settings(Settings()).hf_token == "hf_2"
    assert EngineConfig.from_settings(Settings(vertex_dispatch=True)).engine == "vertex"
    monkeypatch.setenv("SPEAKERLINE_VERTEX_DISPATCH", "true")
    assert EngineConfig.from_settings(Settings()).engine == "vertex"
    monkeypatch.delenv("SPEAKERLINE_VERTEX_DISPATCH")
    # an explicit engine wins over the dispatch flag (the Vertex job itself sets both)
    assert EngineConfig.from_settings(Settings(vertex_dispatch=False, engine="auto")).engine == "auto"
    assert EngineConfig.from_settings(Settings(vertex_dispatch=True, engine="embedded")).engine == "embedded"
    with pytest.raises(ValueError):
        EngineConfig.from_settings(Settings(engine="nope"))


def test_real_loaders_report_unavailable_engines(tmp_path: Path) -> None:
    """The default loaders turn missing weights into EngineUnavailable (no fallback loop)."""
    with pytest.raises(EngineUnavailable, match="weights missing"):
        load("embedded", Settings(embedded_weights_dir=tmp_path))


def test_load_by_name_takes_the_rest_from_the_settings() -> None:
    rec = Recorder()
    settings = Settings(pyannote_model="gs://models/p", diarization_device="cpu", engine="auto")
    assert rec.load("embedded", settings).name == "embedded"
    assert rec.embedded_calls == [EngineConfig(engine="embedded", pyannote_model="gs://models/p", device="cpu")]
    with pytest.raises(ValueError, match="unknown engine"):
        rec.load("whisper", settings)
