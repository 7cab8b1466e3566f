"""One HTTP POST of a notification, classified for the retry policy.

`deliver` never raises for network or HTTP failures: the caller gets a `DeliveryResult` saying
whether a retry can help. Redirects are not followed: the URL policy vetted the original host
only, and a 30x to http://169.254.169.254/ would otherwise walk straight past it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3 import HTTPConnectionPool

from notification.url_policy import UrlDecision

__all__ = ["DeliveryResult", "PinnedAddressAdapter", "deliver", "pinned_session", "send"]

# Statuses that signal a transient condition on the receiver's side.
_RETRIABLE_STATUSES = frozenset({408, 425, 429})
# Enough of a response body to explain an error in logs, without buffering whatever a hostile
# receiver decides to stream at us.
_MAX_BODY_EXCERPT = 512


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    status_code: int | None  # None when no HTTP response arrived
    retriable: bool
    error_code: str | None  # None when ok; see _classify_status and the except clauses in deliver
    message: str
    retry_after_s: float | None = None  # from a Retry-After header in seconds, if the receiver sent one


def deliver(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_s: float = 10,
    session: requests.Session,
) -> DeliveryResult:
    """POST `body` to `url`; 2xx is success, 408/425/429/5xx and network failures are retriable.

    `timeout_s` bounds the connect and each socket read, not the whole exchange (requests has no
    total deadline); the response body is not downloaded beyond a short excerpt.
    """
    try:
        response = session.post(
            url, data=body, headers=dict(headers), timeout=timeout_s, allow_redirects=False, stream=True
        )
    except requests.Timeout as exc:
        return DeliveryResult(False, None, True, "timeout", f"no response within {timeout_s}s: {exc}")
    except requests.ConnectionError as exc:
        return DeliveryResult(False, None, True, "connection_error", f"could not connect: {exc}")
    except requests.RequestException as exc:
        # Invalid URL, too many headers... retrying the same request cannot fix these.
        return DeliveryResult(False, None, False, "request_error", f"request failed: {exc}")
    with response:
        excerpt = _body_excerpt(response)
        return _classify_status(response.status_code, excerpt, _retry_after(response.headers))


def _classify_status(status: int, excerpt: str, retry_after_s: float | None) -> DeliveryResult:
    if 200 <= status < 300:
        return DeliveryResult(True, status, False, None, f"delivered (HTTP {status})")
    detail = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    if 300 <= status < 400:
        return DeliveryResult(False, status, False, "redirect_not_followed", f"{detail} (redirects are refused)")
    if status == 429:
        return DeliveryResult(False, status, True, "rate_limited", detail, retry_after_s)
    if status in _RETRIABLE_STATUSES or status >= 500:
        code = "server_error" if status >= 500 else "http_retriable"
        return DeliveryResult(False, status, True, code, detail, retry_after_s)
    return DeliveryResult(False, status, False, "client_error", detail)


def _body_excerpt(response: requests.Response) -> str:
    try:
        raw = response.raw.read(_MAX_BODY_EXCERPT, decode_content=True)
    except Exception:  # the excerpt is a courtesy for logs; a broken body must not mask the status
        return ""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else ""
    return " ".join(text.split())[:_MAX_BODY_EXCERPT]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    # Only the delta-seconds form: the HTTP-date form is rare for webhooks and needs a clock here.
    value = headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


class PinnedAddressAdapter(HTTPAdapter):
    """Connects to a vetted IP for one host name, defeating DNS rebinding after `check_url`.

    The TCP connection goes to `address`; the Host header, TLS SNI and certificate host name check
    still use `host`, so HTTPS works exactly as without pinning. A request for any other host
    raises instead of silently resolving it (e.g. if URL parsers disagreed about the host).
    """

    def __init__(self, host: str, address: str) -> None:
        super().__init__(max_retries=0)
        self._host = host.lower()
        self._address = address

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> HTTPConnectionPool:
        if proxies and select_proxy(request.url or "", proxies):
            # A proxy resolves the host itself, which would undo the pinning.
            raise requests.exceptions.InvalidProxyURL("proxies are not allowed for pinned deliveries")
        try:
            host_params, ssl_params = self.build_connection_pool_key_attributes(request, verify, cert)
        except ValueError as exc:
            raise requests.exceptions.InvalidURL(exc, request=request) from None
        if host_params["host"].lower().strip("[]") != self._host:
            raise requests.exceptions.InvalidURL(f"refusing unvetted host {host_params['host']!r}")
        pool_kwargs: dict[str, Any] = dict(ssl_params)
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self._host
            pool_kwargs["assert_hostname"] = self._host
        pool: HTTPConnectionPool = self.poolmanager.connection_from_host(
            host=self._address,
            port=host_params["port"],
            scheme=host_params["scheme"],
            pool_kwargs=pool_kwargs,
        )
        return pool

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        # urllib3 would otherwise send "Host: <ip>", which virtual hosts and CDNs reject.
        if "Host" not in request.headers:
            request.headers["Host"] = _netloc_host(request.url or "")


def _netloc_host(url: str) -> str:
    return urlsplit(url).netloc.rpartition("@")[2]


def pinned_session(host: str, address: str) -> requests.Session:
    """A session whose connections for `host` go to `address` (from `UrlDecision.addresses`).

    Environment proxies are ignored (`trust_env = False`): a proxy would resolve the host itself
    and undo the pinning, and the callback must not depend on the worker's environment.
    """
    session = requests.Session()
    session.trust_env = False
    adapter = PinnedAddressAdapter(host, address)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def send(url: str, body: bytes, headers: dict[str, str], decision: UrlDecision, *, timeout_s: float) -> DeliveryResult:
    """`deliver` to the address the URL policy vetted (`decision`, which allowed `url`), so that a DNS answer that
    changes in between cannot redirect the request: the production `NotificationDeps.send`."""
    with pinned_session(decision.host, decision.addresses[0]) as session:
        return deliver(url, body, headers, timeout_s=timeout_s, session=session)
