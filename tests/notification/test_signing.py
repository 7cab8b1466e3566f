import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notification.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    sign,
    signature_headers,
    verify,
)

BODY = b'{"specversion":"1.0","id":"e1"}'
NOW = 1_700_000_000


def test_sign_format_matches_stripe_style_recipe():
    header = sign(BODY, "s3cret", NOW)
    expected = hmac.new(b"s3cret", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"


def test_sign_rejects_empty_secret():
    with pytest.raises(ValueError):
        sign(BODY, "", NOW)


def test_verify_accepts_within_tolerance_and_rejects_stale_or_future():
    header = sign(BODY, "k", NOW)
    assert verify(BODY, header, "k", NOW)
    assert verify(BODY, header, "k", NOW + 300)
    assert not verify(BODY, header, "k", NOW + 301)
    assert not verify(BODY, header, "k", NOW - 301)
    assert verify(BODY, header, "k", NOW + 1000, tolerance_s=1000)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: h.replace("v1=", "v1=0"),
        lambda h: h.replace(f"t={NOW}", f"t={NOW + 1}"),
        lambda h: h.split(",")[1],  # no timestamp
        lambda h: h.split(",")[0],  # no signature
        lambda h: f"t=abc,{h.split(',')[1]}",
        lambda h: f"t={NOW},{h}",  # duplicated timestamp
        lambda h: "",
        lambda h: "garbage",
        lambda h: h.replace("v1=", "v0="),
        lambda h: h + "é",
    ],
)
def test_verify_rejects_tampered_headers(tamper):
    assert not verify(BODY, tamper(sign(BODY, "k", NOW)), "k", NOW)


def test_verify_rejects_wrong_secret_body_and_empty_secret():
    header = sign(BODY, "k", NOW)
    assert not verify(BODY, header, "other", NOW)
    assert not verify(BODY + b" ", header, "k", NOW)
    assert not verify(BODY, header, "", NOW)


def test_verify_accepts_any_of_several_signatures_during_rotation():
    old = sign(BODY, "old", NOW).split(",")[1]
    header = f"{sign(BODY, 'new', NOW)}, {old}"
    assert verify(BODY, header, "old", NOW)
    assert verify(BODY, header, "new", NOW)


@given(st.binary(max_size=200), st.text(min_size=1, max_size=30), st.integers(0, 2**33))
def test_sign_verify_round_trip(body, secret, now):
    assert verify(body, sign(body, secret, now), secret, now)


def test_signature_headers():
    headers = signature_headers(BODY, "k", NOW, event_id="e1", event_type="dev.speakerline.job.completed.v1")
    assert headers["Content-Type"] == "application/json"
    assert headers[EVENT_ID_HEADER] == "e1"
    assert headers[EVENT_TYPE_HEADER] == "dev.speakerline.job.completed.v1"
    assert verify(BODY, headers[SIGNATURE_HEADER], "k", NOW)


def _receiver_recipe() -> Any:
    """The `verify` of the receiver recipe in WEBHOOKS.md, as a receiver would paste it."""
    doc = Path(__file__).parents[2] / "services" / "notification" / "WEBHOOKS.md"
    code = re.search(r"```python\n(.*?)```", doc.read_text(), re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    return namespace["verify"]


def test_webhooks_md_recipe_verifies_our_signatures(monkeypatch):
    # The receiver recipe in WEBHOOKS.md must keep working against the real signer.
    import time

    recipe = _receiver_recipe()
    monkeypatch.setattr(time, "time", lambda: NOW + 10)
    header = sign(BODY, "k", NOW)
    assert recipe(BODY, header, "k")
    assert not recipe(BODY, header, "wrong")
    assert not recipe(BODY + b"x", header, "k")
    monkeypatch.setattr(time, "time", lambda: NOW + 1000)
    assert not recipe(BODY, header, "k")


def test_a_rotation_signs_with_both_keys_and_either_verifies():
    header = sign(BODY, "new", NOW, previous=["old"])
    assert header.count("v1=") == 2
    assert verify(BODY, header, "new", NOW) and verify(BODY, header, "old", NOW)
    assert not verify(BODY, header, "other", NOW)
    # the same key twice, or the current key listed as previous, signs once
    assert sign(BODY, "k", NOW, previous=["k"]) == sign(BODY, "k", NOW)
    with pytest.raises(ValueError):
        sign(BODY, "k", NOW, previous=[""])


def test_webhooks_md_recipe_verifies_a_rotation_header(monkeypatch):
    import time

    recipe = _receiver_recipe()
    monkeypatch.setattr(time, "time", lambda: NOW + 10)
    header = sign(BODY, "new", NOW, previous=["old"])
    assert recipe(BODY, header, "old") and recipe(BODY, header, "new")
