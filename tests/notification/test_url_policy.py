import socket
from typing import Any

import pytest

from notification.url_policy import Resolver, UrlDecision, check_url, is_blocked_address


def resolver_for(*addresses: str) -> Resolver:
    def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses
        ]

    return resolve


def failing_resolver(host: str, port: int) -> list[tuple[Any, ...]]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def check(
    url: str, *addresses: str, allow_private: bool = False, allowed_hosts: frozenset[str] = frozenset()
) -> UrlDecision:
    return check_url(url, allow_private=allow_private, allowed_hosts=allowed_hosts, resolver=resolver_for(*addresses))


def test_public_url_allowed_with_vetted_addresses():
    decision = check("https://hooks.example.com/x?y=1", "93.184.216.34", "2606:2800:220:1::1")
    assert decision == UrlDecision(
        True, "ok", "URL allowed", "hooks.example.com", 443, ("93.184.216.34", "2606:2800:220:1::1")
    )
    assert check("http://Example.COM.:8080/", "93.184.216.34").port == 8080


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "gopher://x", "javascript:alert(1)", "//x"]
)
def test_scheme_not_allowed(url):
    decision = check(url, "93.184.216.34")
    assert (decision.allowed, decision.code) == (False, "scheme_not_allowed")


@pytest.mark.parametrize("url", ["https://user:pw@example.com/", "https://user@example.com/", "http://@example.com/"])
def test_credentials_in_url(url):
    assert check(url, "93.184.216.34").code == "credentials_in_url"


@pytest.mark.parametrize("url", ["http:///path", "http://example.com:notaport/", "http://[::1/"])
def test_invalid_url(url):
    assert check(url, "93.184.216.34").code == "invalid_url"


def test_unresolvable_host():
    decision = check_url("https://nope.invalid/", allow_private=False, resolver=failing_resolver)
    assert (decision.allowed, decision.code) == (False, "unresolvable_host")
    assert check("https://empty.example/").code == "unresolvable_host"  # resolver returned nothing


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # metadata server
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
    ],
)
def test_private_addresses_refused(address):
    decision = check("https://evil.example/", address)
    assert (decision.allowed, decision.code) == (False, "private_address")
    assert address in decision.message
    assert is_blocked_address(address)


def test_every_resolved_address_is_checked():
    decision = check("https://mixed.example/", "93.184.216.34", "10.0.0.5")
    assert decision.code == "private_address" and "10.0.0.5" in decision.message


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert not is_blocked_address(address)


def test_ip_literals_are_checked_without_dns():
    assert check_url(
        "http://169.254.169.254/latest/meta-data", allow_private=False, resolver=failing_resolver
    ).code == ("private_address")
    assert check_url("http://[::1]:8080/", allow_private=False, resolver=failing_resolver).code == "private_address"
    ok = check_url("https://8.8.8.8/", allow_private=False, resolver=failing_resolver)
    assert ok.allowed and ok.addresses == ("8.8.8.8",)


def test_zone_ids_are_stripped_and_garbage_is_blocked():
    assert check("https://ll.example/", "fe80::1%eth0").code == "private_address"
    assert is_blocked_address("not-an-ip")


def test_allow_private_and_allowed_hosts_skip_only_the_address_check():
    assert check("http://localhost:8080/hook", "127.0.0.1", allow_private=True).allowed
    assert check("http://internal.svc/hook", "10.0.0.7", allowed_hosts=frozenset({"Internal.SVC"})).allowed
    assert not check("http://other.svc/hook", "10.0.0.7", allowed_hosts=frozenset({"internal.svc"})).allowed
    assert check("ftp://localhost/", "127.0.0.1", allow_private=True).code == "scheme_not_allowed"
    assert check("http://a:b@localhost/", "127.0.0.1", allow_private=True).code == "credentials_in_url"


def test_real_localhost_resolution():
    refused = check_url("http://localhost:9/", allow_private=False)
    assert (refused.allowed, refused.code) == (False, "private_address")
    allowed = check_url("http://localhost:9/", allow_private=True)
    assert allowed.allowed and allowed.addresses
    assert all(is_blocked_address(a) for a in allowed.addresses)


def test_decimal_ipv4_forms_resolve_to_loopback_and_are_refused():
    # getaddrinfo accepts inet_aton forms that ipaddress does not: they must still be vetted.
    assert check_url("http://2130706433/", allow_private=False).code == "private_address"
    assert check_url("http://127.1/", allow_private=False).code == "private_address"
