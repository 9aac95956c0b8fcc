"""One webhook attempt over HTTP: resolve, check the address, connect to it, post, read a little of the answer.

Short timeouts (connect and a bound on the whole attempt), no redirects followed, no proxies from the
environment, at most `max_response_bytes` of the answer read (undecoded, so a compressed bomb is not unpacked):
a slow, huge or hostile receiver costs a worker at most one bounded attempt.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from urllib.parse import urlsplit

import httpx

from tessera.webhooks.addresses import IPAddress, IPNetwork, address_problem, literal_address

MAX_RETRY_AFTER_SECONDS = 366 * 24 * 3600
"""Anything longer is read as this; the retry policy bounds it much further."""


class Outcome(StrEnum):
    delivered = "delivered"
    """2xx."""
    gone = "gone"
    """410: the receiver says the endpoint is gone for good; it is disabled."""
    rejected = "rejected"
    """Another 4xx except 408 and 429: sending the same again cannot help."""
    retry = "retry"
    """3xx, 408, 429, 5xx, timeouts, connection errors, refused addresses."""


def classify(status_code: int | None) -> Outcome:
    if status_code is None:
        return Outcome.retry
    if 200 <= status_code < 300:
        return Outcome.delivered
    if status_code == 410:
        return Outcome.gone
    if 400 <= status_code < 500 and status_code not in (408, 429):
        return Outcome.rejected
    return Outcome.retry


@dataclass(frozen=True)
class SendPolicy:
    allow_loopback: bool = False
    allowed_networks: Sequence[IPNetwork] = ()
    connect_timeout: float = 5.0
    total_timeout: float = 15.0
    max_response_bytes: int = 65_536


@dataclass
class SendResult:
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None
    retry_after_seconds: float | None = None
    response_bytes: int = 0
    address: str | None = None


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks for (a number or an HTTP date), or None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(min(int(text), MAX_RETRY_AFTER_SECONDS))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, min((when - now).total_seconds(), float(MAX_RETRY_AFTER_SECONDS)))


async def resolve(host: str, port: int) -> list[IPAddress]:
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = literal_address(str(sockaddr[0]).split("%", 1)[0])
        if address is not None and address not in found:
            found.append(address)
    return found


def new_client() -> httpx.AsyncClient:
    """A client for webhook attempts; share one per process.

    No keep-alive: a pooled connection is keyed by the checked address, and one opened (and its certificate
    verified) for one host name must never carry a request for another name that happens to resolve there.
    """
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=0),
        headers={"User-Agent": "Tessera-Webhooks/1"},
    )


async def send(
    client: httpx.AsyncClient, url: str, body: bytes, headers: Mapping[str, str], policy: SendPolicy
) -> SendResult:
    """Post `body` to `url` once; every failure is a result, never an exception."""
    try:
        async with asyncio.timeout(policy.total_timeout):
            return await _send(client, url, body, headers, policy)
    except TimeoutError:
        return SendResult(Outcome.retry, error=f"no complete answer within {policy.total_timeout:g} s")


async def _send(
    client: httpx.AsyncClient, url: str, body: bytes, headers: Mapping[str, str], policy: SendPolicy
) -> SendResult:
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(policy.connect_timeout):
            addresses = await resolve(host, port)
    except (OSError, UnicodeError) as error:
        return SendResult(Outcome.retry, error=f"cannot resolve {host}: {error}")
    except TimeoutError:
        return SendResult(Outcome.retry, error=f"cannot resolve {host}: no answer within {policy.connect_timeout:g} s")
    if not addresses:
        return SendResult(Outcome.retry, error=f"cannot resolve {host}: no address")
    # Every address is checked, not only the one used: a name must not mix public and internal ones.
    for address in addresses:
        problem = address_problem(
            address, allow_loopback=policy.allow_loopback, allowed_networks=policy.allowed_networks
        )
        if problem:
            return SendResult(Outcome.retry, error=f"refused: {host} resolves to {problem}", address=str(address))
    address = addresses[0]
    target = httpx.URL(url).copy_with(host=str(address))
    request_headers = {**headers, "Host": parts.netloc.rsplit("@", 1)[-1], "Content-Type": "application/json"}
    extensions: dict[str, object] = {}
    if parts.scheme == "https" and literal_address(host) is None:
        extensions["sni_hostname"] = host  # TLS and its certificate check are for the name, not the address
    timeout = httpx.Timeout(policy.total_timeout, connect=policy.connect_timeout)
    try:
        request = client.build_request(
            "POST", target, content=body, headers=request_headers, timeout=timeout, extensions=extensions
        )
        response = await client.send(request, stream=True)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= policy.max_response_bytes:
                    break
        finally:
            await response.aclose()
    except httpx.TimeoutException as error:
        return SendResult(Outcome.retry, error=f"timeout: {type(error).__name__}", address=str(address))
    except httpx.HTTPError as error:
        return SendResult(Outcome.retry, error=f"{type(error).__name__}: {error}"[:500], address=str(address))
    status = response.status_code
    result = SendResult(
        classify(status),
        status_code=status,
        response_bytes=min(read, policy.max_response_bytes),
        address=str(address),
        retry_after_seconds=retry_after_seconds(response.headers.get("retry-after"), datetime.now(UTC)),
    )
    if 300 <= status < 400:
        result.error = f"redirect ({status}) not followed"
    elif result.outcome != Outcome.delivered:
        result.error = f"HTTP {status}"
    return result
