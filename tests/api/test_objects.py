"""api.objects.GcsObjects signs real V4 URLs: the signature is checked here against an independent rebuild of
the canonical request (https://cloud.google.com/storage/docs/authentication/canonical-requests)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import google.auth.credentials
import google.cloud.storage
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from api import handlers
from api.auth import Principal
from api.objects import GcsObjects
from api.schemas import UploadRequest
from api.wiring import config
from speakerline.settings import Settings
from speakerline_tools.stack_keys import ensure_signing_key
from tests.fakes import MemoryApiStore, MemoryBlobStore, RecordingPublisher

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


# --- expiry, and the URLs the handlers hand out -----------------------------------------------------------------
# fake-gcs-server checks neither signatures nor expiry, so an expired or tampered URL cannot be refused end to end
# locally: what Cloud Storage checks is verified here, on the URLs the API really hands out.


def _signed_at(query: dict[str, str]) -> datetime:
    return datetime.strptime(query["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _deps(objects: GcsObjects, settings: Settings) -> handlers.ApiDeps:
    return handlers.ApiDeps(
        config(settings, "//speakerline/api"), MemoryApiStore(), objects, MemoryBlobStore(), RecordingPublisher()
    )


def test_an_upload_url_expires_after_the_configured_ttl(objects: GcsObjects, key_file: Path) -> None:
    settings = Settings(project="p", api_upload_url_ttl_s=900)
    body = UploadRequest(file_name="standup.mp3", content_type="audio/mpeg", size=2048, num_speakers=2)
    before = datetime.now(UTC).replace(microsecond=0)
    upload = handlers.create_upload(body, Principal("newsroom", "k"), _deps(objects, settings))

    query = _verify(key_file, "PUT", upload.upload_url, upload.upload_headers)  # exactly the headers handed out
    assert query["X-Goog-Expires"] == "900" == str(upload.expires_in)
    # Valid from the moment it was signed: Cloud Storage refuses it once X-Goog-Date + X-Goog-Expires has passed.
    assert before - timedelta(seconds=1) <= _signed_at(query) <= datetime.now(UTC)


def test_a_result_url_expires_after_the_configured_ttl(objects: GcsObjects, key_file: Path) -> None:
    settings = Settings(project="p", api_result_url_ttl_s=120)
    deps = _deps(objects, settings)
    job = "job_0123456789abcdef01234567"
    assert isinstance(deps.store, MemoryApiStore)
    deps.store.docs[job] = {
        "job_id": job,
        "status": "COMPLETED",
        "request": {"input": {"uri": "gs://u/api/x/a.wav", "filename": "a.wav"}, "producer": "newsroom"},
        "result": {"output_uri": f"gs://r/results/{job}/output.json"},
    }
    url = handlers.signed_result(job, "json", Principal("newsroom", "k"), deps)
    query = _verify(key_file, "GET", url, {})
    assert query["X-Goog-Expires"] == "120"
    assert query["response-content-disposition"] == 'attachment; filename="a.json"'


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Goog-Expires", "604800"),  # a week instead of ten minutes
        ("X-Goog-Date", "20990101T000000Z"),  # signed "later": expires later
    ],
)
def test_a_stretched_expiry_does_not_verify(objects: GcsObjects, key_file: Path, name: str, value: str) -> None:
    url = objects.sign_put("gs://b/api/job_x/a.wav", HEADERS, 600)
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    assert query[name] != value
    _verify(key_file, "PUT", parts._replace(query=urlencode(query)).geturl(), HEADERS)  # re-encoding alone is fine
    tampered = parts._replace(query=urlencode({**query, name: value})).geturl()
    with pytest.raises(InvalidSignature):
        _verify(key_file, "PUT", tampered, HEADERS)


def test_a_larger_length_range_than_signed_does_not_verify(objects: GcsObjects, key_file: Path) -> None:
    """The signed range is what keeps the uploaded file within the size the limits were checked against."""
    headers = {**HEADERS, "x-goog-content-length-range": "0,2048"}
    url = objects.sign_put("gs://b/api/job_x/a.wav", headers, 600)
    _verify(key_file, "PUT", url, headers)
    with pytest.raises(InvalidSignature):
        _verify(key_file, "PUT", url, {**headers, "x-goog-content-length-range": "0,4294967296"})


@pytest.mark.parametrize("path", ["/b/api/job_x/../job_y/a.wav", "/b/api/job_y/a.wav", "/b/api/job_x/a.wav/.."])
def test_a_url_moved_to_another_path_does_not_verify(objects: GcsObjects, key_file: Path, path: str) -> None:
    url = objects.sign_put("gs://b/api/job_x/a.wav", HEADERS, 600)
    parts = urlsplit(url)
    with pytest.raises(InvalidSignature):
        _verify(key_file, "PUT", parts._replace(path=path).geturl(), HEADERS)
