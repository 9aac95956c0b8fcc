"""Pure webhook rules: which URLs and addresses are refused, the retry schedule, answers and Retry-After."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tessera.errors import InvalidInput
from tessera.webhooks.addresses import address_problem, check_endpoint_url
from tessera.webhooks.event_types import EVENT_TYPES
from tessera.webhooks.schedule import next_delay, planned_delay
from tessera.webhooks.secrets import PREFIX, decrypt_secret, encrypt_secret, generate_secret
from tessera.webhooks.sender import Outcome, classify, retry_after_seconds

REFUSED_ADDRESSES = [
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.10.10",  # link-local
    "0.0.0.0",
    "100.64.0.1",  # carrier-grade NAT
    "224.0.0.1",
    "fc00::1",  # unique local
    "fd12:3456::1",
    "fe80::1",  # link-local
    "::ffff:10.0.0.1",  # IPv4-mapped private
    "::ffff:169.254.169.254",
    "::",
    "ff02::1",
]


@pytest.mark.parametrize("text", REFUSED_ADDRESSES)
def test_internal_addresses_are_refused(text: str) -> None:
    assert address_problem(ipaddress.ip_address(text), allow_loopback=True) is not None


@pytest.mark.parametrize("text", ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"])
def test_loopback_only_when_allowed(text: str) -> None:
    address = ipaddress.ip_address(text)
    assert address_problem(address, allow_loopback=False) is not None
    assert address_problem(address, allow_loopback=True) is None


def test_public_addresses_pass_and_allowed_networks_open_private_ones() -> None:
    assert address_problem(ipaddress.ip_address("93.184.216.34"), allow_loopback=False) is None
    assert address_problem(ipaddress.ip_address("2606:2800:220:1::1"), allow_loopback=False) is None
    private = ipaddress.ip_address("10.1.2.3")
    assert address_problem(private, allow_loopback=False, allowed_networks=[ipaddress.ip_network("10.0.0.0/8")]) is None
    assert address_problem(private, allow_loopback=False, allowed_networks=[ipaddress.ip_network("fd00::/8")])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/hook", "must start with https://"),
        ("ftp://example.com/hook", "must start with https://"),
        ("https://user:pw@example.com/", "user name or password"),
        ("https:///nohost", "names no host"),
        ("https://example.com:99999/", "not a URL"),
        ("https://exa mple.com/", "percent-encoded"),
        ("https://bücher.example/", "percent-encoded"),
        ("https://example.com/#frag", "fragment"),
        ("https://10.0.0.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://[fd00::1]/", "private"),
        ("https://[::ffff:192.168.0.1]/", "private"),
        ("https://127.0.0.1/", "loopback"),
        ("https://localhost/", "this machine"),
        ("http://127.0.0.1:8080/", "must start with https://"),
        ("https://example.com/" + "a" * 2100, "at most 2048"),
        ("not a url", "percent-encoded"),
        ("example.com/hook", "must start with https://"),
    ],
)
def test_endpoint_urls_refused_at_registration(url: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_endpoint_url(url, allow_http_loopback=False)
    assert caught.value.issues[0].field == "url"
    assert message in caught.value.issues[0].message


def test_plain_http_only_to_loopback_and_only_when_allowed() -> None:
    assert check_endpoint_url("https://hooks.example.com/x?y=1", allow_http_loopback=False)
    assert check_endpoint_url("http://127.0.0.1:9000/hook", allow_http_loopback=True)
    assert check_endpoint_url("http://localhost:9000/hook", allow_http_loopback=True)
    with pytest.raises(InvalidInput, match="only to loopback"):
        check_endpoint_url("http://example.com/hook", allow_http_loopback=True)


def test_waits_grow_stay_bounded_and_jitter_within_half() -> None:
    waits = [planned_delay(attempt, 10, 3600, 0.999) for attempt in range(1, 12)]
    lows = [planned_delay(attempt, 10, 3600, 0.0) for attempt in range(1, 12)]
    assert waits[0] < 10
    assert lows[0] == 5
    assert all(later >= earlier for earlier, later in zip(waits[:8], lows[1:9], strict=True))
    assert max(waits) <= 3600
    assert lows[-1] == 1800
    assert planned_delay(10_000, 10, 3600, 0.5) <= 3600  # no overflow however long it runs


@given(st.integers(1, 11), st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True))
def test_below_the_longest_wait_a_wait_never_shrinks_from_one_attempt_to_the_next(
    attempt: int, first: float, second: float
) -> None:
    assert planned_delay(attempt + 1, 10, 21600, second) >= planned_delay(attempt, 10, 21600, first)


def test_retry_after_lengthens_up_to_its_bound_and_never_shortens() -> None:
    assert next_delay(10, None, 3600) == 10
    assert next_delay(10, 120, 3600) == 120
    assert next_delay(10, 999_999, 3600) == 3600
    assert next_delay(100, 1, 3600) == 100
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Thu, 01 Jan 2026 00:02:00 GMT", now) == 120
    assert retry_after_seconds("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds("9" * 40, now) == 366 * 24 * 3600


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.delivered),
        (204, Outcome.delivered),
        (301, Outcome.retry),
        (400, Outcome.rejected),
        (404, Outcome.rejected),
        (408, Outcome.retry),
        (410, Outcome.gone),
        (429, Outcome.retry),
        (500, Outcome.retry),
        (503, Outcome.retry),
        (None, Outcome.retry),
    ],
)
def test_answers_decide_the_outcome(status: int | None, outcome: Outcome) -> None:
    assert classify(status) == outcome


def test_secrets_are_long_random_and_open_only_for_their_endpoint() -> None:
    import base64
    import uuid

    secret = generate_secret()
    assert secret.startswith(PREFIX)
    assert len(base64.b64decode(secret[len(PREFIX) :])) >= 24
    assert generate_secret() != secret
    endpoint = uuid.uuid4()
    blob = encrypt_secret(b"k" * 32, endpoint, secret)
    assert secret.encode() not in blob
    assert decrypt_secret(b"k" * 32, endpoint, blob) == secret
    with pytest.raises(Exception, match="no secret"):
        decrypt_secret(b"k" * 32, uuid.uuid4(), blob)


def test_every_event_type_has_a_schema_of_the_envelope() -> None:
    for name, event in EVENT_TYPES.items():
        schema = event.schema()
        assert schema["properties"]["type"] == {"const": name}
        assert schema["required"] == ["id", "type", "timestamp", "data"]
