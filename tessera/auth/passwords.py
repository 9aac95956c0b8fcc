"""Passwords: Argon2id hashes (argon2-cffi's RFC 9106 profile) and the rules a new password must pass."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from tessera.auth.errors import WeakPassword

MAX_LENGTH = 1024  # hashing cost grows with the input; nobody types more
_hasher = PasswordHasher()


@cache
def _common() -> frozenset[str]:
    # zxcvbn's list of the 30,000 most common passwords (compiled from leaked password sets), kept current by
    # that package rather than copied here.
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_new_password(password: str, *, email: str, min_length: int) -> None:
    """Raise WeakPassword (naming `password`) unless the password is long, uncommon and not the address."""
    if len(password) < min_length:
        raise WeakPassword(f"use at least {min_length} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"use at most {MAX_LENGTH} characters")
    folded = password.strip().casefold()
    if folded in _common():
        raise WeakPassword("this is one of the most common passwords; choose another")
    local_part = email.split("@", 1)[0].casefold()
    if folded in {email.casefold(), local_part}:
        raise WeakPassword("do not use your e-mail address as password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when the password matches; for an account without a password, as much work is done for nothing."""
    try:
        return _hasher.verify(stored if stored is not None else _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


@cache
def _dummy_hash() -> str:
    # Verifying against this costs what verifying a real hash costs, so timing does not tell who has an account.
    return _hasher.hash("no account has this password")
