"""Recipients of one notification grouped by the language they read, for one outbox row per language."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.email.locales import choose, recipient_locale
from tessera.models import Organization, User


async def by_language(
    session: AsyncSession, organization_id: uuid.UUID, recipients: list[str], available: Iterable[str]
) -> dict[str | None, list[str]]:
    """Recipients grouped by the translation they read (None: English), in a stable order.

    A recipient's locale is read when the row is written; one who changes it between a failed attempt and its
    retry may get the message in both languages, once each.
    """
    if not recipients:
        return {None: []}
    choices = list(available)
    organization = await session.get(Organization, organization_id)
    addresses = [email.lower() for email in recipients]
    found = await session.execute(select(User.email, User.locale).where(func.lower(User.email).in_(addresses)))
    user_locales = {email.lower(): locale for email, locale in found.all()}
    groups: dict[str | None, list[str]] = {}
    for email in recipients:
        tag = recipient_locale(user_locales.get(email.lower()), organization.locale if organization else None)
        groups.setdefault(choose(tag, choices), []).append(email)
    return dict(sorted(groups.items(), key=lambda item: item[0] or ""))
