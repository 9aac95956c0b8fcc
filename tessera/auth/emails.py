"""E-mail addresses in one canonical form, so two spellings of one mailbox are one account and no look-alike
spelling can reach another.

Local parts must be ASCII: that refuses NUL, controls, bidi overrides and look-alike letters (a Cyrillic letter
that looks Latin) before the `@`. Domains may be internationalized; they are stored in their ASCII (IDNA) form,
so a look-alike domain shows up as the `xn--` name it really is. The whole address is compared lower-case.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 320


def normalize_email(value: str) -> str:
    """The canonical form of an address, or ValueError saying what is wrong with it."""
    if len(value) > MAX_LENGTH:
        raise ValueError(f"an e-mail address has at most {MAX_LENGTH} characters")
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        raise ValueError(f"{value!r} is not an e-mail address (name@example.com): {error}") from None
    address = checked.ascii_email or checked.normalized
    return address.lower()
