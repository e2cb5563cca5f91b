"""The SSRF guard: no request reaches a loopback, private, link-local, multicast or reserved address
unless the user allows it.

The check sits in httpcore's network backend, at the moment a connection is opened: the host is
resolved once, every address it resolves to is checked, and the socket is opened to the address that
was checked. So it holds for the first request and for every redirect hop alike, and a DNS answer
cannot change between the check and the connect (no rebinding window).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from storage.errors import SwarmError


class BlockedAddress(SwarmError):
    """The host resolves to an address the crawl may not reach."""

    reason = "blocked_private_address"

    def __init__(self, host: str, address: str, kind: str):
        super().__init__(f"{host} resolves to {kind} address {address}; {{--allow_private}} lets the crawl reach it")
        self.host, self.address, self.kind = host, address, kind


class DNSFailure(Exception):
    def __init__(self, host: str, error: Exception):
        super().__init__(f"cannot resolve {host}: {error}")


# Public addresses that reach a cloud host's own services (instance metadata, DNS, health checks): a
# page must not make the crawler talk to them on the user's behalf. 169.254.169.254 is link-local and
# the IPv6 ones (fd00:ec2::254, …) are private, so they are caught by the kinds below already.
_CLOUD_SERVICES = {ipaddress.ip_address("168.63.129.16")}  # Azure's wire server
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: a network's own translation prefix


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and is routed to: mapped (::ffff:a.b.c.d), 6to4
    (2002::/16) or NAT64 (64:ff9b::/96). Such an address reaches that IPv4 host, so it is judged as it."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_kind(address: str) -> str | None:
    """The kind of non-public address this is, or None for a public one."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return "private"
        if ip.is_site_local:  # fec0::/10, deprecated but still routed inside some networks
            return "site-local"
        ip = _embedded_ipv4(ip) or ip
    if ip in _CLOUD_SERVICES:
        return "cloud-service"
    for kind in ("loopback", "link_local", "multicast", "private", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if not ip.is_global:
        return "non-global"
    return None


class AddressPolicy:
    def __init__(self, allow_private: bool = False, allowed_networks: Iterable[str] = ()):
        self.allow_private = allow_private
        self.allowed = [ipaddress.ip_network(n) for n in allowed_networks]

    def refusal(self, address: str) -> str | None:
        """Why `address` may not be reached, or None when it may."""
        if self.allow_private:
            return None
        kind = address_kind(address)
        if kind is None:
            return None
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if any(ip in net for net in self.allowed):
            return None
        return kind


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's default backend, but resolving and vetting the host before connecting."""

    def __init__(self, policy: AddressPolicy):
        self.policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode (a label of 64+)
            raise DNSFailure(host, exc) from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            kind = self.policy.refusal(address)
            if kind is not None:
                raise BlockedAddress(host, address, kind)
        return await self._inner.connect_tcp(
            addresses[0], port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress(path, path, "unix-socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the guarded backend; proxies from the environment are ignored, since a
    proxy would make the connection (and the check) somewhere else."""

    def __init__(self, policy: AddressPolicy, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None):
        # loading the CA bundle takes ~15 ms: one context is shared by every host's client
        ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )
