"""First start: the vendor organization and its first administrator with an API key."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.apikeys import create_api_key
from tessera.catalog.schema import VendorSpec
from tessera.models import Membership, Organization, OrganizationKind, Role, User


@dataclass(frozen=True)
class Bootstrapped:
    vendor: Organization
    admin: User
    new_token: str | None
    """The admin's API key when one was created now; it cannot be shown again later."""


async def ensure_vendor(
    session: AsyncSession, secret_key: bytes, spec: VendorSpec, *, issue_key: bool = False
) -> Bootstrapped:
    """Create the vendor and its admin once; later calls change nothing unless a new key is asked for."""
    vendor = await session.scalar(select(Organization).where(Organization.kind == OrganizationKind.vendor))
    email = spec.admin_email.lower()
    created = vendor is None
    if vendor is None:
        vendor = Organization(
            kind=OrganizationKind.vendor,
            name=spec.name,
            country=spec.country,
            timezone=spec.timezone,
            locale=spec.locale,
            custom_fields={},
        )
        session.add(vendor)
        await session.flush()
    admin = await session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id == vendor.id, Membership.role == Role.admin)
        .order_by(User.created_at)
        .limit(1)
    )
    if admin is None:
        admin = await session.scalar(select(User).where(User.email == email))
        if admin is None:
            admin = User(email=email, name=spec.admin_name, locale=spec.locale)
            session.add(admin)
            await session.flush()
        session.add(Membership(user_id=admin.id, organization_id=vendor.id, role=Role.admin))
        created = True
    token = None
    if created or issue_key:
        _key, token = await create_api_key(session, secret_key, name="bootstrap admin key", user_id=admin.id)
    await session.flush()
    return Bootstrapped(vendor=vendor, admin=admin, new_token=token)
