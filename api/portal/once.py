"""A secret shown once (a new API key, a webhook signing secret), carried from the POST to the page that shows it.

It is never stored: the POST seals it (AES-GCM, under a key derived from the deployment secret for that purpose,
bound to the session) into a short-lived cookie that only the page showing it receives, and that page deletes the
cookie. So a reload neither repeats the POST nor shows the secret again, and a copied cookie is useless without
the session it was made for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.responses import Response

from api.portal.deps import Page
from api.portal.render import is_secure
from tessera.auth.keyring import as_ring

LIFETIME_SECONDS = 300


def _key(page: Page, purpose: str) -> bytes:
    return hmac.new(as_ring(page.state.secret_key).current, f"portal {purpose}".encode(), hashlib.sha256).digest()


def seal(page: Page, purpose: str, value: str) -> str:
    assert page.viewer is not None
    nonce = os.urandom(12)
    sealed = AESGCM(_key(page, purpose)).encrypt(nonce, value.encode(), page.viewer.session_token.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(page: Page, purpose: str, value: str | None) -> str | None:
    """The sealed value, or None when it is missing, altered, another session's or another purpose's."""
    if not value or page.viewer is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(value.encode())
        opened = AESGCM(_key(page, purpose)).decrypt(raw[:12], raw[12:], page.viewer.session_token.encode())
    except (ValueError, InvalidTag):
        return None
    return opened.decode()


def carry(response: Response, page: Page, *, cookie: str, path: str, purpose: str, value: str) -> None:
    """Send `value` sealed in a cookie that only `path` receives, for a few minutes."""
    response.set_cookie(
        cookie,
        seal(page, purpose, value),
        max_age=LIFETIME_SECONDS,
        httponly=True,
        samesite="strict",
        secure=is_secure(page),
        path=path,
    )


def take(page: Page, response: Response, *, cookie: str, path: str, purpose: str) -> str | None:
    """The value carried to this page, if any; the cookie is deleted by `response` either way."""
    response.delete_cookie(cookie, path=path)
    return unseal(page, purpose, page.request.cookies.get(cookie))
