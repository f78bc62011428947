"""Which URLs `relay` may fetch, and which address it then connects to.

A URL is fetched only over https, and only if every address its host resolves to is public
(`is_public_address`): no private, loopback, link-local, shared, multicast, reserved,
documentation or unspecified address, also when such an IPv4 address hides inside an IPv6 one
(IPv4-mapped `::ffff:a.b.c.d`, 6to4 `2002::/16`, Teredo, NAT64 `64:ff9b::/96`).

The caller's allow-list holds two kinds of entry. A bare host (`minio.internal`, `10.0.0.5`)
skips the public-address rule only: https is still required, and the host is connected to by
name. An origin (`http://127.0.0.1:8080`: scheme, host and port, nothing else) lets exactly that
origin through as it is, plain http and a local address included: the demo provider's own
server is allowed this way, and no other port of its host is.

DNS rebinding: the host is resolved once, here, and the request goes to the address that was
checked. The URL's host is replaced by that IP, the `Host` header keeps the name, and the TLS
handshake sends the name as SNI and verifies the certificate against it (httpx's
`sni_hostname` request extension, which httpcore hands to `ssl` as `server_hostname`). httpx's
pool keys connections by scheme, IP and port only, so a kept-alive connection verified for one
name would be handed to a later request for another name on the same IP without a new
certificate check: a pinned request therefore carries `Connection: close` (the shared client
must stay on HTTP/1.1; with HTTP/2 one connection would serve concurrent streams). Behind an
HTTP proxy httpx checks the certificate against the IP instead, so pinned fetches fail closed.
tests/integration/test_storage_relay_tls.py shows all of this over real TLS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from storage._exceptions import DownloadFailed, UnsafeURL

__all__ = ["Resolver", "Target", "allow_list", "allowed_origin", "check_url",
           "is_public_address", "normalize_host", "origin", "pin"]

Resolver = Callable[[str, int], Awaitable[list[str]]]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Target:
    """What to send for one hop: the URL to request, extra headers and request extensions."""

    url: httpx.URL
    headers: Mapping[str, str] = field(default_factory=dict)
    extensions: Mapping[str, Any] = field(default_factory=dict)


def normalize_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def allowed_origin(url: httpx.URL) -> str:
    """`scheme://host:port` with the port always spelled out: how an origin entry of the
    allow-list is compared (`http://h` and `http://h:80` are one origin)."""
    port = url.port or {"http": 80, "https": 443}.get(url.scheme, 0)
    host = normalize_host(url.raw_host.decode("ascii", "replace"))
    host = f"[{host}]" if ":" in host else host
    return f"{url.scheme}://{host}:{port}"


def allow_list(entries: Iterable[str]) -> frozenset[str]:
    """The allow-list as `check_url` compares it: bare hosts normalised, origins spelled out.
    A malformed origin entry raises ValueError."""
    out = set()
    for entry in entries:
        if "://" not in entry:
            out.add(normalize_host(entry))
            continue
        try:
            url = httpx.URL(entry.strip())
        except httpx.InvalidURL:
            raise ValueError(f"allow-list entry {entry!r} is not an origin") from None
        if url.scheme not in ("http", "https") or not url.host or url.userinfo or \
                url.path not in ("", "/") or url.query or url.fragment:
            raise ValueError(f"allow-list entry {entry!r} is not an origin "
                             "(scheme://host:port, nothing more)")
        out.add(allowed_origin(url))
    return frozenset(out)


def origin(url: httpx.URL) -> str:
    """`scheme://host[:port]` for messages: never the path or query, which may hold a token."""
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str | IPAddress) -> bool:
    """True only for a globally routable unicast address."""
    if isinstance(address, str):
        address = address.split("%", 1)[0]  # an IPv6 zone id says nothing about the scope
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_ipv4(ip)) is not None:
        return is_public_address(inner)
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified
    )


async def system_resolve(host: str, port: int) -> list[str]:
    """The host's TCP addresses from the system resolver (which runs in a worker thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def check_url(url: httpx.URL, allow_hosts: frozenset[str], resolve: Resolver) -> Target:
    """Refuses an unsafe URL with UnsafeURL; otherwise says where to send the request."""
    where = origin(url)
    if url.scheme not in ("https", "http"):
        raise UnsafeURL(f"refusing a {url.scheme or 'schemeless'}: URL")
    try:
        host = normalize_host(url.raw_host.decode("ascii"))
    except UnicodeDecodeError:
        raise UnsafeURL(f"{where}: the host is not valid") from None
    if not host:
        raise UnsafeURL("refusing a URL without a host")
    if url.userinfo:
        raise UnsafeURL(f"{where}: credentials in the URL are not accepted")
    if allowed_origin(url) in allow_hosts:
        return Target(url)  # exactly an allowed origin: as it is
    if url.scheme != "https":
        raise UnsafeURL(f"{where}: only https is accepted")
    if host in allow_hosts:
        return Target(url)  # an allowed host: any address, but https
    if (literal := _literal(host)) is not None:
        if not is_public_address(literal):
            raise UnsafeURL(f"{where}: not a public address")
        return Target(url)
    try:
        addresses = await resolve(host, url.port or 443)
    except (OSError, UnicodeError) as exc:
        raise DownloadFailed(f"{where}: cannot resolve the host ({exc})") from None
    if not addresses:
        raise DownloadFailed(f"{where}: the host has no address")
    if not all(is_public_address(a) for a in addresses):
        raise UnsafeURL(f"{where}: the host resolves to a non-public address")
    return pin(url, addresses[0])


def pin(url: httpx.URL, address: str) -> Target:
    """Sends the request for `url` to `address`, keeping the name for Host, SNI and the
    certificate check."""
    return Target(
        url.copy_with(host=address.split("%", 1)[0]),
        headers={"Host": url.netloc.decode("ascii"), "Connection": "close"},
        extensions={"sni_hostname": normalize_host(url.raw_host.decode("ascii"))},
    )
