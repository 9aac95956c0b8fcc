"""Sign-in's pure rules: passwords, addresses, clean text, key versions, rate limits."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, extract_parameters, profiles
from pydantic import ValidationError

from tessera.auth import passwords
from tessera.auth.emails import normalize_email
from tessera.auth.errors import TooManyAttempts, WeakPassword
from tessera.auth.keyring import KeyRing, secret_version
from tessera.auth.ratelimit import SignInLimiter
from tessera.catalog.schema import ProductGroupSpec
from tessera.settings import Settings


@pytest.mark.parametrize(
    "password",
    ["eleven char", "Password1234", "1Q2W3E4R5T6Y", "jane.doe@example.com", " Jane.Doe@Example.com "],
)
def test_weak_passwords_are_refused(password: str) -> None:
    with pytest.raises(WeakPassword) as refused:
        passwords.check_new_password(password, email="jane.doe@example.com", min_length=12)
    assert refused.value.issues[0].field == "password"


def test_the_common_list_is_the_shipped_one() -> None:
    words = passwords._common()
    assert len(words) == 30000
    assert {"123456", "password", "1qaz2wsx3edc"} <= words


def test_a_good_password_hashes_with_argon2id_and_verifies() -> None:
    passwords.check_new_password("correct horse battery staple", email="jane@example.com", min_length=12)
    stored = passwords.hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert passwords.verify_password(stored, "correct horse battery staple")
    assert not passwords.verify_password(stored, "correct horse battery stapler")
    assert not passwords.verify_password(None, "correct horse battery staple")
    assert not passwords.verify_password("not a hash", "x")


@pytest.mark.usefixtures("production_password_hashing")
def test_the_application_hashes_with_the_rfc_9106_low_memory_profile() -> None:
    """The other tests hash at the lowest cost; what the application stores costs 64 MiB and three passes."""
    stored = passwords.hash_password("correct horse battery staple")
    parameters = extract_parameters(stored)
    assert parameters == profiles.RFC_9106_LOW_MEMORY
    assert (parameters.memory_cost, parameters.time_cost) == (64 * 1024, 3)
    assert passwords.verify_password(stored, "correct horse battery staple")
    assert not passwords.verify_password(None, "correct horse battery staple")
    assert not passwords.needs_rehash(stored)
    # A hash made at a lower cost is rewritten at the next sign-in.
    assert passwords.needs_rehash(PasswordHasher.from_parameters(profiles.CHEAPEST).hash("x"))


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Jane.Doe@Example.COM", "jane.doe@example.com"),
        ("jane@b\u00fccher.example", "jane@xn--bcher-kva.example"),
    ],
)
def test_addresses_have_one_canonical_form(given: str, stored: str) -> None:
    assert normalize_email(given) == stored


@pytest.mark.parametrize(
    "given", ["jane\x00@example.com", "ja\u202ene@example.com", "j\u0430ne@example.com", "jane@", "x" * 321]
)
def test_unsafe_addresses_are_refused(given: str) -> None:
    with pytest.raises(ValueError, match="e-mail"):
        normalize_email(given)


@pytest.mark.parametrize("bad", ["CAD\x00", "C\u202eAD", "line\x1b[31m"])
def test_config_documents_refuse_control_characters_naming_the_field(bad: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ProductGroupSpec.model_validate({"code": "CAD", "name": {"en": bad}})
    assert refused.value.errors()[0]["loc"] == ("name",)
    assert "U+" in str(refused.value)
    ProductGroupSpec.model_validate({"code": "CAD", "name": {"en": "two\nlines\tare fine"}})


def test_versions_name_secrets_without_revealing_them() -> None:
    assert secret_version(b"one") != secret_version(b"two")
    assert len(secret_version(b"one")) == 8
    assert KeyRing(b"two", [b"one"]).version == secret_version(b"two")
    with pytest.raises(ValueError, match="empty"):
        KeyRing(b"")


def test_settings_read_previous_secrets_newest_first() -> None:
    settings = Settings(secret_key="new", previous_secret_keys="older, oldest,")
    ring = settings.resolved_secret_key()
    assert ring.secrets == (b"new", b"older", b"oldest")


def test_settings_refuse_a_limit_they_cannot_read() -> None:
    with pytest.raises(ValidationError, match="sign_in_limit_account"):
        Settings(sign_in_limit_account="five a minute")


def test_the_limiter_stops_exactly_at_the_limit_and_says_when_to_retry() -> None:
    limiter = SignInLimiter("3/minute", "5/minute")
    for _ in range(3):
        limiter.attempt("jane@example.com", "10.0.0.1")
    with pytest.raises(TooManyAttempts) as blocked:
        limiter.attempt("jane@example.com", "10.0.0.1")
    assert 1 <= blocked.value.retry_after <= 60
    # Other accounts from that client still have two attempts of the client's five.
    limiter.attempt("joe@example.com", "10.0.0.1")
    limiter.attempt("joe@example.com", "10.0.0.1")
    with pytest.raises(TooManyAttempts):
        limiter.attempt("joe@example.com", "10.0.0.1")
    # A success clears the account's count, not the client's.
    limiter.succeeded("jane@example.com")
    limiter.attempt("jane@example.com", "10.0.0.2")
