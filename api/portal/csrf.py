"""CSRF tokens: every form carries one, bound to the session (or, before sign-in, to a random cookie).

The token is an HMAC of that binding under the deployment secret, so it cannot be guessed from outside, is the
same on every page of one session (several tabs work) and stops working when the session ends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from tessera.auth.keyring import as_ring
from tessera.errors import Forbidden

SESSION_COOKIE = "tessera_session"
ANONYMOUS_COOKIE = "tessera_csrf"
FIELD = "csrf_token"


class CsrfRefused(Forbidden):
    code = "csrf-refused"
    title = "Form refused"


def new_binding() -> str:
    return secrets.token_urlsafe(32)


def token_for(secret_key: bytes, binding: str) -> str:
    digest = hmac.new(as_ring(secret_key).current, b"csrf\0" + binding.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check(secret_key: bytes, binding: str | None, submitted: str | None) -> None:
    """Raise CsrfRefused unless the submitted token belongs to this browser's binding."""
    if not binding or not submitted or not hmac.compare_digest(token_for(secret_key, binding), submitted):
        raise CsrfRefused("the form has expired or did not come from this site; reload the page and try again")
