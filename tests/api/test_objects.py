"""api.objects.GcsObjects signs real V4 URLs: the signature is checked here against an independent rebuild of
the canonical request (https://cloud.google.com/storage/docs/authentication/canonical-requests)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import google.auth.credentials
import google.cloud.storage
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from api.objects import GcsObjects
from speakerline_tools.stack import ensure_signing_key

HEADERS = {
    "content-type": "audio/wav",
    "x-goog-if-generation-match": "0",
    "x-goog-meta-job_id": "job_0123456789abcdef01234567",
    "x-goog-meta-producer": "newsroom",
    "x-goog-meta-num_speakers": "3",
    "x-goog-meta-filename": "my talk.wav",
}


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("signing") / "key.json"
    ensure_signing_key(path)
    return path


@pytest.fixture(scope="module")
def objects(key_file: Path) -> GcsObjects:
    anonymous = google.auth.credentials.AnonymousCredentials()  # type: ignore[no-untyped-call]
    client = google.cloud.storage.Client(project="p", credentials=anonymous)
    return GcsObjects(client, key_file=key_file, public_url="http://127.0.0.1:4443/")


def _public_key(key_file: Path) -> rsa.RSAPublicKey:
    info = json.loads(key_file.read_text())
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.public_key()


def _enc(value: str) -> str:
    return quote(value, safe="-_.~")


def _string_to_sign(method: str, url: str, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The V4 string to sign of `url` for a request sending `headers`, rebuilt from the URL; also the query."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    canonical_query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(query.items()) if k != "X-Goog-Signature")
    sent = {k.lower(): v.strip() for k, v in headers.items()} | {"host": parts.netloc}
    canonical_headers = "".join(f"{k}:{sent[k]}\n" for k in sorted(sent))
    signed_headers = ";".join(sorted(sent))
    canonical_request = "\n".join(
        [
            method,
            quote(parts.path, safe="/-_.~"),
            canonical_query,
            canonical_headers,
            signed_headers,
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = query["X-Goog-Credential"].split("/", 1)[1]
    string_to_sign = "\n".join(
        ["GOOG4-RSA-SHA256", query["X-Goog-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    return string_to_sign.encode(), query


def _verify(key_file: Path, method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
    message, query = _string_to_sign(method, url, headers)
    _public_key(key_file).verify(bytes.fromhex(query["X-Goog-Signature"]), message, padding.PKCS1v15(), hashes.SHA256())
    return query


def test_sign_put_signs_every_header(objects: GcsObjects, key_file: Path) -> None:
    url = objects.sign_put("gs://b/api/job_x/a.wav", HEADERS, 600)

    assert url.startswith("http://127.0.0.1:4443/b/api/job_x/a.wav?")
    query = _verify(key_file, "PUT", url, HEADERS)
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert query["X-Goog-Expires"] == "600"
    assert query["X-Goog-SignedHeaders"].split(";") == sorted([*HEADERS, "host"])
    email = json.loads(key_file.read_text())["client_email"]
    assert query["X-Goog-Credential"].startswith(email + "/")
    assert query["X-Goog-Credential"].endswith("/auto/storage/goog4_request")


def test_sign_put_does_not_change_the_caller_headers(objects: GcsObjects) -> None:
    headers = dict(HEADERS)
    objects.sign_put("gs://b/api/job_x/a.wav", headers, 600)
    assert headers == HEADERS


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-goog-meta-producer", "someone-else"),
        ("x-goog-meta-job_id", "job_ffffffffffffffffffffffff"),
        ("x-goog-if-generation-match", "1"),
        ("content-type", "text/html"),
    ],
)
def test_a_changed_signed_header_does_not_verify(objects: GcsObjects, key_file: Path, header: str, value: str) -> None:
    url = objects.sign_put("gs://b/api/job_x/a.wav", HEADERS, 600)
    with pytest.raises(InvalidSignature):
        _verify(key_file, "PUT", url, {**HEADERS, header: value})


def test_a_missing_signed_header_does_not_verify(objects: GcsObjects, key_file: Path) -> None:
    url = objects.sign_put("gs://b/api/job_x/a.wav", HEADERS, 600)
    headers = {k: v for k, v in HEADERS.items() if k != "x-goog-meta-producer"}
    with pytest.raises(InvalidSignature):
        _verify(key_file, "PUT", url, headers)


def test_another_object_or_method_does_not_verify(objects: GcsObjects, key_file: Path) -> None:
    url = objects.sign_put("gs://b/api/job_x/a.wav", HEADERS, 600)
    with pytest.raises(InvalidSignature):
        _verify(key_file, "PUT", url.replace("/a.wav?", "/b.wav?"), HEADERS)
    with pytest.raises(InvalidSignature):
        _verify(key_file, "POST", url, HEADERS)


def test_sign_get_with_a_download_name(objects: GcsObjects, key_file: Path) -> None:
    url = objects.sign_get("gs://b/results/job_x/output.json", 120, download_name="my talk.json")

    query = _verify(key_file, "GET", url, {})
    assert query["X-Goog-Expires"] == "120"
    assert query["X-Goog-SignedHeaders"] == "host"
    assert query["response-content-disposition"] == 'attachment; filename="my talk.json"'
    tampered = url.replace("my%20talk.json", "evil.html")
    assert tampered != url
    with pytest.raises(InvalidSignature):
        _verify(key_file, "GET", tampered, {})


def test_sign_get_without_a_download_name(objects: GcsObjects, key_file: Path) -> None:
    url = objects.sign_get("gs://b/api/job_x/a.wav", 60)
    query = _verify(key_file, "GET", url, {})
    assert "response-content-disposition" not in query
    assert query["X-Goog-Expires"] == "60"
