"""`TESSERA_SMTP_URL`: where messages go, as one URL checked when the process starts.

    smtp://[user[:password]@]host[:port][?starttls=true&timeout=30]    plain SMTP, port 25; STARTTLS if asked
    smtps://[user[:password]@]host[:port][?timeout=30]                 TLS from the first byte, port 465

User and password are percent-decoded (`%40` for `@`). A password is never sent over a connection that is not
encrypted, unless the server is on this machine: `smtp://` with credentials to another host needs
`?starttls=true`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_TIMEOUT_SECONDS = 120.0
"""Three of these fit in the delivery workflow's attempt timeout."""
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class SmtpServer:
    """A parsed, checked SMTP URL; `repr` never shows the password."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None
    timeout: float

    def __repr__(self) -> str:
        return f"SmtpServer({self.describe()})"

    def describe(self) -> str:
        """For logs and `tessera outbox`: everything but the password."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}@" if self.username else ""
        tls = "TLS" if self.implicit_tls else "STARTTLS" if self.starttls else "no TLS"
        return f"{scheme}://{user}{self.host}:{self.port} ({tls})"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_smtp_url(url: str) -> SmtpServer:
    """The server a URL names, or ValueError saying what is wrong and how it is written."""
    example = "write e.g. smtp://user:password@mail.example.com:587?starttls=true or smtps://mail.example.com"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise ValueError(f"not an SMTP URL ({error}); {example}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"the scheme must be smtp or smtps, not {parts.scheme or 'none'!r}; {example}")
    host = parts.hostname
    if not host:
        raise ValueError(f"the URL names no host; {example}")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError(f"an SMTP URL has no path or fragment; {example}")
    try:
        options = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError(f"the query {parts.query!r} is not key=value&...; {example}") from None
    unknown = sorted(set(options) - {"starttls", "timeout"})
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}; the options are starttls and timeout")
    if any(len(values) > 1 for values in options.values()):
        raise ValueError("each option may be given once")
    starttls = _flag(options.get("starttls", ["false"])[0])
    if scheme == "smtps" and "starttls" in options:
        raise ValueError("smtps:// is encrypted from the start; starttls belongs to smtp:// only")
    timeout = _timeout(options.get("timeout", [str(DEFAULT_TIMEOUT_SECONDS)])[0])
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise ValueError("a password needs a user name: smtp://user:password@host")
    encrypted = scheme == "smtps" or starttls
    if username and not encrypted and not is_loopback(host):
        raise ValueError(f"the password would travel unencrypted to {host}; add ?starttls=true or use smtps://")
    return SmtpServer(
        host=host,
        port=port or DEFAULT_PORTS[scheme],
        implicit_tls=scheme == "smtps",
        starttls=starttls,
        username=username,
        password=password,
        timeout=timeout,
    )


def _flag(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"starttls must be true or false, not {value!r}")


def _timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"timeout must be seconds, e.g. 30, not {value!r}") from None
    if not 1 <= seconds <= MAX_TIMEOUT_SECONDS:
        raise ValueError(f"timeout must be 1 to {MAX_TIMEOUT_SECONDS:.0f} seconds, not {value}")
    return seconds
