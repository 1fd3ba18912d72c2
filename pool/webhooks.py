"""Webhooks: which URLs a farmer may give, the message a notification becomes, and posting it.

A farmer's webhook is called by the pool, from inside the operator's network: unless the operator allows it
(``notifications.allow_private_webhooks``), it must be https and reach only public addresses. The check is made twice:
on the URL when the farmer sets it (an address written in it), and on every address its name resolves to when it is
called (PublicOnlyResolver), so that a name that later resolves to 127.0.0.1 or 10.x gets nothing.

Every message carries the event's idempotency key in an ``Idempotency-Key`` header and in its body: the pool delivers
at least once (a crash between a receiver's 2xx and the pool's record of it sends the event again), and a receiver
that keeps the keys it accepted sees each event once.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from pool.config import WebhookConfig

MAX_URL_LENGTH = 500
MOJOS_PER_XCH = 10**12


class WebhookRefused(ValueError):
    """A URL the pool will not call (its reason is the message, fit to show the farmer)."""


class WebhookFailed(Exception):
    """The webhook answered, but not with a 2xx."""


def is_public(address: str) -> bool:
    """Whether an IP address is a public unicast one (not private, loopback, link-local, shared, reserved ...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_webhook_url(url: str, allow_private: bool) -> str:
    """The farmer's webhook URL, stripped, if the pool may call it; WebhookRefused says why not."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise WebhookRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # port: a malformed one raises ValueError
    except ValueError as exc:
        raise WebhookRefused(f"not a valid URL: {exc}") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise WebhookRefused("the URL must start with https://")
    if not host:
        raise WebhookRefused("the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("the URL must not hold a user name or password")
    if not allow_private:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
                raise WebhookRefused("the URL must name a public host") from None
        else:
            if not is_public(str(literal)):
                raise WebhookRefused("the URL must not point at a private, loopback or link-local address")
    return url


class PublicOnlyResolver(AbstractResolver):
    """Resolves as aiohttp does, keeping only public addresses: a name that resolves to none is not connected to."""

    def __init__(self) -> None:
        self._resolver = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        public = [result for result in found if is_public(result["host"])]
        if not public:
            raise OSError(f"{host} resolves to no public address")
        return public

    async def close(self) -> None:
        await self._resolver.close()


def webhook_session(timeout: float, public_only: bool) -> aiohttp.ClientSession:
    """An HTTP client for webhooks: no redirects followed (posting is done in ``post``), ``public_only`` for the
    farmers' webhooks unless the operator allows private ones."""
    connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver()) if public_only else aiohttp.TCPConnector()
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout), trust_env=False)


def destination_name(hook: WebhookConfig) -> str:
    """How the store records a delivery to one of the operator's webhooks: not the URL itself (a Discord or Slack
    webhook URL is its own secret), but a digest of it."""
    return "operator:" + hashlib.sha256(hook.url.encode()).hexdigest()[:16]


def body(format: str, text: str, event: dict[str, Any]) -> dict[str, Any]:
    """What is posted: Discord's and Slack's message forms carry the text (and the key, which they ignore); the
    plain JSON form carries the whole event."""
    if format == "discord":
        return {"content": text, "idempotency_key": event["idempotency_key"]}
    if format == "slack":
        return {"text": text, "idempotency_key": event["idempotency_key"]}
    return {**event, "text": text}


async def post(session: aiohttp.ClientSession, url: str, message: dict[str, Any], key: str) -> None:
    """POST the message; WebhookFailed unless it answers 2xx (a redirect is not followed: it is not a delivery)."""
    async with session.post(url, json=message, headers={"Idempotency-Key": key}, allow_redirects=False) as answer:
        if not 200 <= answer.status < 300:
            raise WebhookFailed(f"HTTP {answer.status}")


def xch(mojos: int) -> str:
    """Mojos as XCH, exactly: 1750000000000 -> '1.75'."""
    whole, fraction = divmod(mojos, MOJOS_PER_XCH)
    return f"{whole}.{fraction:012d}".rstrip("0").rstrip(".")
