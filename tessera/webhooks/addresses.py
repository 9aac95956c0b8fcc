"""Where webhooks may go: checks of endpoint URLs (when registered) and of resolved addresses (when sending).

A receiver's URL is chosen by a customer's administrator, so without these checks Tessera could be made to
post into its own network (server-side request forgery): databases, the cloud metadata service, admin
consoles on loopback. Registration refuses what is wrong by its text; delivery resolves the name, refuses
private, loopback, link-local, multicast and reserved addresses (also inside IPv4-mapped IPv6), and then
connects to exactly the address it checked, so a name that resolves differently a moment later (DNS
rebinding) cannot slip past.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from tessera.errors import FieldIssue, InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_LENGTH = 2048
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
METADATA = ipaddress.ip_address("169.254.169.254")


def _refused(message: str, field: str = "url") -> InvalidInput:
    return InvalidInput(f"{field}: {message}", issues=[FieldIssue(field, message)])


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def address_problem(
    address: IPAddress, *, allow_loopback: bool, allowed_networks: Sequence[IPNetwork] = ()
) -> str | None:
    """Why a webhook must not connect to `address`, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed_networks if network.version == address.version):
        return None
    if address.is_loopback:
        return None if allow_loopback else f"{address} is a loopback address"
    if address == METADATA:
        return f"{address} is the cloud metadata service"
    for flag, what in (
        ("is_unspecified", "unspecified"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, flag):
            return f"{address} is a {what} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def check_endpoint_url(
    url: str, *, allow_http_loopback: bool, allowed_networks: Sequence[IPNetwork] = (), field: str = "url"
) -> str:
    """The URL as stored, or InvalidInput naming `field`: https (http only to loopback, when allowed)."""
    if len(url) > MAX_URL_LENGTH:
        raise _refused(f"at most {MAX_URL_LENGTH} characters", field)
    if not url.isascii() or any(char.isspace() for char in url):
        raise _refused("spaces and non-ASCII characters must be percent-encoded (use the xn-- form of a domain)", field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise _refused(f"not a URL: {error}", field) from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
    if scheme not in ("https", "http"):
        raise _refused("must start with https://", field)
    if not host:
        raise _refused("names no host", field)
    if parts.username is not None or parts.password is not None:
        raise _refused("must not carry a user name or password; authenticate the signature instead", field)
    if parts.fragment:
        raise _refused("must not have a #fragment", field)
    if port == 0:
        raise _refused("port 0 is not a port", field)
    address = literal_address(host)
    loopback = host.lower() in LOOPBACK_NAMES or (address is not None and address.is_loopback)
    if scheme == "http" and not (allow_http_loopback and loopback):
        allowed = " (plain http only to loopback addresses here)" if allow_http_loopback else ""
        raise _refused(f"must start with https://{allowed}", field)
    if host.lower() in LOOPBACK_NAMES and not allow_http_loopback:
        raise _refused("names this machine (localhost)", field)
    if address is not None:
        problem = address_problem(address, allow_loopback=allow_http_loopback, allowed_networks=allowed_networks)
        if problem:
            raise _refused(f"{problem}; webhooks go to public addresses only", field)
    return url
