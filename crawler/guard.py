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


class BlockedAddress(Exception):
    """The host resolves to an address the crawl may not reach."""

    def __init__(self, host: str, address: str, kind: str):
        super().__init__(f"{host} resolves to {kind} address {address}; pass --allow-private to reach it")
        self.host, self.address, self.kind = host, address, kind


class DNSFailure(Exception):
    def __init__(self, host: str, error: OSError):
        super().__init__(f"cannot resolve {host}: {error}")


def address_kind(address: str) -> str | None:
    """The kind of non-public address this is, or None for a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
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
        except OSError as exc:
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
