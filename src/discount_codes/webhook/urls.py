"""Which webhook URLs we agree to call: server-side request forgery is refused.

A brand chooses the URL, so without these rules it could make our worker call the
cloud metadata service or an internal admin port. The host is checked when the
endpoint is registered and again right before each connection, and the connection
is made to the very address that passed the check (DNS can change in between).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from discount_codes.problems import WebhookUrlRefused

MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Not covered by ``is_global``: NAT64 (64:ff9b::/96) carries an IPv4 address inside.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Metadata services that sit on addresses some clouds route publicly or in CGNAT space.
_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)


@dataclass(frozen=True)
class Target:
    """Where to connect: the URL with its host replaced by a checked address."""

    url: str
    host_header: str
    sni_hostname: str | None


def refused_address(ip: IPAddress) -> str | None:
    """Why this address may not be called, or None when it is a public address."""
    if ip in _METADATA:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        if inner is not None:
            return refused_address(inner)
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a carrier-grade NAT address"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or not ip.is_global:
        return "a non-public address"
    return None


HTTPS_ONLY = "Webhook URLs must use https."
DEV_HTTP = (
    "Webhook URLs must use https; in dev mode plain http is accepted only for a receiver on "
    "this machine (127.0.0.1, ::1 or localhost)."
)


def _is_loopback(ip: IPAddress) -> bool:
    inner = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (inner or ip).is_loopback


def parse(url: str, *, allow_private: bool, allow_loopback: bool = False) -> SplitResult:
    """The rules that need no DNS: length, scheme, userinfo, a host. With ``allow_loopback``
    (dev mode) plain http passes here and ``target`` insists that it goes to loopback."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise WebhookUrlRefused("The URL cannot be parsed.") from None
    allowed = {"https", "http"} if allow_private or allow_loopback else {"https"}
    if parts.scheme not in allowed:
        raise WebhookUrlRefused(DEV_HTTP if allow_loopback else HTTPS_ONLY)
    if not parts.hostname:
        raise WebhookUrlRefused("The URL has no host.")
    if not allow_private and (parts.username is not None or parts.password is not None):
        raise WebhookUrlRefused("The URL must not carry a user name or password.")
    return parts


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=5
        )
    except (OSError, TimeoutError):
        raise WebhookUrlRefused(f"The host {host!r} does not resolve.") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise WebhookUrlRefused(f"The host {host!r} does not resolve.")
    return addresses


async def check_url(url: str, *, allow_private: bool, allow_loopback: bool = False) -> None:
    """Raise ``WebhookUrlRefused`` unless the URL may be registered."""
    await target(url, allow_private=allow_private, allow_loopback=allow_loopback)


async def target(url: str, *, allow_private: bool, allow_loopback: bool = False) -> Target:
    """Check the URL and say where to connect. Every address the host resolves to must be
    public (a host with one private address among public ones is refused, so round-robin
    DNS cannot smuggle one in); the connection then goes to the first of them.

    ``allow_loopback`` (dev mode) also lets a host that resolves to loopback only through,
    over http or https, so ``make run`` can call a receiver on the same machine; private,
    link-local and metadata addresses stay refused."""
    parts = parse(url, allow_private=allow_private, allow_loopback=allow_loopback)
    host = parts.hostname or ""
    netloc_host = parts.netloc.rsplit("@", 1)[-1]
    if allow_private:
        return Target(url=url, host_header=netloc_host, sni_hostname=None)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(host, port)
    local = allow_loopback and all(_is_loopback(a) for a in addresses)
    if parts.scheme != "https" and not local:
        raise WebhookUrlRefused(DEV_HTTP)
    for address in addresses:
        why = None if local else refused_address(address)
        if why is not None:
            hint = " (in dev mode only a receiver on this machine is accepted)"
            hint = hint if allow_loopback else ""
            raise WebhookUrlRefused(f"The host {host!r} resolves to {why}{hint}.")
    pinned = addresses[0]
    pinned_host = f"[{pinned}]" if pinned.version == 6 else str(pinned)
    pinned_url = parts._replace(netloc=f"{pinned_host}:{port}").geturl()
    return Target(
        url=pinned_url,
        host_header=netloc_host,
        sni_hostname=host if parts.scheme == "https" else None,
    )
