"""Where a webhook may be sent (SSRF rules), checked at subscribe time and again before each attempt.

Under the strict policy (every environment but `local`, `WEBHOOK_TARGET_POLICY`) a target must be
`https`, name no user or password, and resolve only to public unicast addresses: private,
loopback, link-local, CGNAT, multicast, reserved, unspecified and documentation ranges are
refused, as are the IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4, NAT64, Teredo)
when the address they carry is one of those, and the cloud metadata addresses. If any address a
name resolves to is refused, the name is: the request is then sent to the address that was
checked (`Target.address`), so a second lookup can't swap in another one (DNS rebinding).

An operator may let chosen private networks through (`WEBHOOK_ALLOWED_NETWORKS`: a CRM inside the
VPC, an on-premises receiver): an address in one of them is allowed although private; https is
still required, and the metadata addresses stay refused whatever is listed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2048
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Not global by the IANA registries, or reachable from inside a cloud network all the same.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# IETF protocol assignments: a few are global by the registry (192.0.0.9, .10), none is an integrator.
_PROTOCOL_ASSIGNMENTS = ipaddress.ip_network("192.0.0.0/24")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)


class UnsafeTarget(ValueError):
    """The URL may not receive webhooks; the message says why (for the admin who gave it)."""


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    address: str | None = None  # the checked address to connect to (strict), or None: resolve as usual


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (tests replace this to act as DNS)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeTarget(f"the host {host!r} does not resolve") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refusal(address: IpAddress) -> str | None:
    """Why a connection to `address` is refused under the strict policy, or None if it is allowed."""
    if address in _METADATA:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = refusal(embedded)
            return f"an IPv6 form of {embedded} ({reason})" if reason else None
        if address in _NAT64_LOCAL:
            return "a local-use NAT64 address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "the unspecified address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a shared (CGNAT) address"
    if isinstance(address, ipaddress.IPv4Address) and address in _PROTOCOL_ASSIGNMENTS:
        return "an IETF protocol address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address (the server's is public by definition)
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # IPv4-compatible (::a.b.c.d, deprecated): never a public destination.
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def parse(url: str, *, strict: bool) -> Target:
    """The URL's parts if its form is allowed (no DNS lookup)."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise UnsafeTarget("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"the URL can't be read: {exc}") from None
    allowed = ("https",) if strict else ("https", "http")
    if parts.scheme not in allowed:
        raise UnsafeTarget("the URL must use https" if strict else "the URL must use http or https")
    if not parts.hostname:
        raise UnsafeTarget("the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("the URL may not carry a user name or password (sign-in goes in the signature)")
    if parts.fragment:
        raise UnsafeTarget("the URL may not have a #fragment")
    return Target(url=url, host=parts.hostname, port=port or _default_port(parts))


def _default_port(parts: SplitResult) -> int:
    return 443 if parts.scheme == "https" else 80


def check(url: str, *, strict: bool, allowed: Sequence[IpNetwork] = ()) -> Target:
    """The target to connect to, or UnsafeTarget. Strict: every address the host resolves to must
    be allowed (public, or in one of the `allowed` networks), and the first is the one to connect to."""
    target = parse(url, strict=strict)
    if not strict:
        return target
    try:
        literal: IpAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    addresses = [str(literal)] if literal is not None else resolve(target.host, target.port)
    if not addresses:
        raise UnsafeTarget(f"the host {target.host!r} does not resolve")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # a scoped IPv6 address is link-local anyway
        reason = refusal(address)
        if reason and address not in _METADATA and any(address in network for network in allowed):
            reason = None
        if reason:
            raise UnsafeTarget(f"the host {target.host!r} resolves to {address}, {reason}")
    return Target(url=target.url, host=target.host, port=target.port, address=addresses[0])
