"""Licenses within the caller's reach, each with its ticket (without the code)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import Cursor, Limit, Session, scoped
from api.routes.orders import ticket_summary
from api.schemas.common import Page
from api.schemas.licenses import LicenseRead
from tessera.models import License, LicenseStatus, Ticket
from tessera.orders import licenses
from tessera.principal import Principal

router = APIRouter(tags=["licenses"])

LicensesReader = Annotated[Principal, Depends(scoped("licenses:read"))]


def license_read(license: License, product_code: str, ticket: Ticket | None) -> LicenseRead:
    return LicenseRead(
        id=license.id,
        order_id=license.order_id,
        line_no=license.line_no,
        product=product_code,
        organization_id=license.organization_id,
        fields=license.fields,
        modules=license.modules,
        status=license.status,
        expires_at=license.expires_at,
        ticket=ticket_summary(ticket),
        created_at=license.created_at,
        updated_at=license.updated_at,
    )


@router.get("/licenses", response_model=Page[LicenseRead])
async def list_licenses(
    session: Session,
    caller: LicensesReader,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: Annotated[LicenseStatus | None, Query(description="Only licenses with this status.")] = None,
    order_id: Annotated[uuid.UUID | None, Query(description="Only the licenses of this order.")] = None,
) -> Page[LicenseRead]:
    """List the licenses the caller may see: an administrator's subtree, a member's visible tickets."""
    page = await licenses.list_licenses(session, caller, limit=limit, cursor=cursor, status=status, order_id=order_id)
    return Page(items=[license_read(*row) for row in page.items], next_cursor=page.next_cursor)


@router.get("/licenses/{license_id}", response_model=LicenseRead)
async def get_license(license_id: uuid.UUID, session: Session, caller: LicensesReader) -> LicenseRead:
    """Show one license the caller may see."""
    return license_read(*await licenses.visible_license(session, caller, license_id))
