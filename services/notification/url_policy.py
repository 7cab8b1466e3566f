"""Which callback URLs the notification service may call (server-side request forgery guard).

Job submitters choose the webhook URL, so without a policy anyone could make our service issue
POSTs to the metadata server (169.254.169.254, which hands out credentials), to localhost admin
ports, or into the VPC. `check_url` refuses those before any request is made.

DNS rebinding: a hostile DNS server can answer with a public address for this check and a
private one a moment later when the HTTP client resolves again. `UrlDecision.addresses` holds the
vetted addresses, and `notification.delivery.pinned_session` connects to one of them
(keeping the hostname for the Host header, SNI and certificate checks), which closes that window.
Residual risk if a sender skips pinning: a rebinding attacker can reach internal addresses.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = [
    "Resolver",
    "UrlDecision",
    "check_url",
    "is_blocked_address",
]

DecisionCode = Literal[
    "ok", "invalid_url", "scheme_not_allowed", "credentials_in_url", "unresolvable_host", "private_address"
]
# Same call shape as socket.getaddrinfo(host, port); tests inject a fake returning chosen addresses.
Resolver = Callable[[str, int], Sequence[tuple[Any, ...]]]

_ALLOWED_SCHEMES = {"http": 80, "https": 443}


@dataclass(frozen=True)
class UrlDecision:
    allowed: bool
    code: DecisionCode  # machine-readable; "ok" when allowed
    message: str  # for humans: job status, logs
    host: str = ""
    port: int = 0
    addresses: tuple[str, ...] = ()  # vetted IPs to connect to (pin) when allowed


def _refuse(code: DecisionCode, message: str, host: str = "", port: int = 0) -> UrlDecision:
    return UrlDecision(False, code, message, host, port)


def check_url(
    url: str,
    *,
    allow_private: bool,
    allowed_hosts: frozenset[str] = frozenset(),
    resolver: Resolver = socket.getaddrinfo,
) -> UrlDecision:
    """Vet a callback URL; every address the host resolves to must be public.

    `allow_private` (the local stack, which calls back to localhost) and `allowed_hosts` (exact,
    case-insensitive host names, e.g. an internal receiver) skip the address check only: scheme
    and credential rules always apply, and the host must still resolve so the sender can pin.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        return _refuse("invalid_url", f"URL could not be parsed: {exc}")
    scheme = parts.scheme.lower()
    if scheme not in _ALLOWED_SCHEMES:
        return _refuse("scheme_not_allowed", f"only http and https callbacks are allowed, got {scheme!r}")
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL leak into logs and job documents; receivers should verify signatures.
        return _refuse("credentials_in_url", "the URL must not contain a user name or password")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return _refuse("invalid_url", "the URL has no host")
    port = port if port is not None else _ALLOWED_SCHEMES[scheme]
    addresses = _resolve(host, port, resolver)
    if not addresses:
        return _refuse("unresolvable_host", f"host {host!r} does not resolve", host, port)
    trusted = allow_private or host in {h.lower().rstrip(".") for h in allowed_hosts}
    blocked = [a for a in addresses if is_blocked_address(a)]
    if blocked and not trusted:
        return _refuse(
            "private_address",
            f"host {host!r} resolves to non-public address {blocked[0]}; callbacks must be public",
            host,
            port,
        )
    return UrlDecision(True, "ok", "URL allowed", host, port, addresses)


def _resolve(host: str, port: int, resolver: Resolver) -> tuple[str, ...]:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return (str(literal),)  # an IP literal needs no DNS (and must not depend on a fake resolver)
    try:
        infos = resolver(host, port)
    except (OSError, UnicodeError):  # socket.gaierror is an OSError; IDNA failures are UnicodeErrors
        return ()
    found: list[str] = []
    for info in infos:
        # sockaddr is (ip, port) or (ip, port, flow, scope); drop an IPv6 "%zone" suffix.
        address = str(info[4][0]).split("%", 1)[0]
        if address not in found:
            found.append(address)
    return tuple(found)


def is_blocked_address(address: str) -> bool:
    """Whether an IP must not be called back: anything but a plain public unicast address.

    Unparseable strings are blocked: refusing is the safe answer for anything we can't classify.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 reaches 127.0.0.1 on dual-stack sockets: judge the embedded IPv4.
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local  # includes 169.254.169.254, the cloud metadata server
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global  # also catches 100.64.0.0/10 (carrier-grade NAT), which is not "private"
    )
