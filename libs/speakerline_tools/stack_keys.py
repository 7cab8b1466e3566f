"""The local stack's keys, made by `speakerline stack up` and kept with its state: the throwaway service-account key
the API signs URLs with, the webhook signing key (when none is configured) and the studio link's API key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from speakerline.apikeys import ApiKey
from speakerline.settings import Settings

if TYPE_CHECKING:
    from speakerline_tools.stack import StackConfig

WEBHOOK_KEY_ENV = "SPEAKERLINE_WEBHOOK_SIGNING_KEY"
#: The producer of the API key `up` makes for the studio link (local stack only; the cloud keeps
#: `speakerline apikey create` and ID tokens).
LOCAL_PRODUCER = "local"


def ensure_signing_key(path: Path) -> None:
    """A throwaway service-account key for signing URLs locally (fake-gcs-server does not check signatures, but
    the URLs are real V4 signed URLs, as in the cloud)."""
    if path.exists():
        return
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "speakerline-local",
        "private_key_id": "local",
        "private_key": pem,
        "client_email": "speakerline-api@speakerline-local.iam.gserviceaccount.com",
        "client_id": "0",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    path.chmod(0o600)


def ensure_webhook_key(cfg: StackConfig) -> None:
    """Webhooks work out of the box locally: without a configured signing key (nor a Secret Manager version
    naming one), generate one and keep it with the stack's state, so that it survives restarts and `stack env`
    can show it to receivers. The notification service refuses to start without a key."""
    settings = Settings()
    if settings.webhook_signing_key or settings.webhook_signing_key_secret:
        return
    if cfg.service_env.get(WEBHOOK_KEY_ENV) or cfg.service_env.get(WEBHOOK_KEY_ENV + "_SECRET"):
        return
    if cfg.webhook_key_file.exists():
        return
    import secrets

    cfg.webhook_key_file.parent.mkdir(parents=True, exist_ok=True)
    cfg.webhook_key_file.write_text(secrets.token_urlsafe(32) + "\n")
    cfg.webhook_key_file.chmod(0o600)


class ApiKeys(Protocol):
    """What `ensure_studio_key` needs of `speakerline.apikeys.FirestoreApiKeys`."""

    def verify(self, token: str) -> ApiKey | None: ...

    def create(self, producer: str, description: str = "") -> tuple[str, ApiKey]: ...


def ensure_studio_key(cfg: StackConfig, keys: ApiKeys) -> str:
    """An active API key of the local producer: the one kept with the stack's state while Firestore still knows it
    (the emulator keeps nothing across its restarts), else a new one."""
    try:
        kept = cfg.studio_key_file.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if kept and keys.verify(kept) is not None:
        return kept
    key, _ = keys.create(LOCAL_PRODUCER, description="the local stack's studio link (speakerline stack up)")
    cfg.studio_key_file.parent.mkdir(parents=True, exist_ok=True)
    cfg.studio_key_file.write_text(key + "\n")
    cfg.studio_key_file.chmod(0o600)
    return key
