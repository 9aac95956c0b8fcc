"""A person's own account: name, language and password (a new password ends every portal session)."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tessera.auth import passwords
from tessera.auth.resets import end_other_resets
from tessera.auth.sessions import end_sessions_of
from tessera.errors import FieldIssue, InvalidInput, NotFound
from tessera.models import User

LOCALE_CHOICES = ("en", "de")
"""Languages the portal speaks; an account may store any BCP 47 tag, but the profile form offers these."""


async def _user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


async def update_profile(session: AsyncSession, user_id: uuid.UUID, *, name: str, locale: str) -> User:
    user = await _user(session, user_id)
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("enter your name", issues=[FieldIssue("name", "1 to 200 characters")])
    if locale not in LOCALE_CHOICES:
        raise InvalidInput(
            f"unknown language {locale!r}", issues=[FieldIssue("locale", f"one of {', '.join(LOCALE_CHOICES)}")]
        )
    user.name, user.locale = name, locale
    await session.flush()
    return user


async def change_password(
    session: AsyncSession, user_id: uuid.UUID, *, current: str, new: str, min_length: int
) -> None:
    """Set a new password after checking the current one; every portal session and reset link of the account ends."""
    user = await _user(session, user_id)
    if not await asyncio.to_thread(passwords.verify_password, user.password_hash, current):
        raise InvalidInput("the current password is wrong", issues=[FieldIssue("current_password", "wrong password")])
    passwords.check_new_password(new, email=user.email, min_length=min_length)
    user.password_hash = await asyncio.to_thread(passwords.hash_password, new)
    await end_sessions_of(session, user.id)
    # A reset link asked for before the change would undo it: the person who knows the password has spoken.
    await end_other_resets(session, user.id)
    await session.flush()
