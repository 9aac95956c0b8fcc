"""Organizations, their members and their grants. Every check is the authorization service's (tessera.rights)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import Cursor, Limit, OrganizationsReader, OrganizationsWriter, Session, State
from api.openapi import problems
from api.schemas.auth import InvitationRead
from api.schemas.common import Page
from api.schemas.organizations import (
    GrantRead,
    GrantUpdate,
    MemberRead,
    MembershipRead,
    MembershipUpdate,
    OrganizationCreate,
    OrganizationRead,
    OrganizationUpdate,
)
from tessera.auth.invitations import InvitationPolicy
from tessera.models import Grant, Invitation, OrganizationKind
from tessera.organizations import service, users
from tessera.rights import grants, quota, reach

router = APIRouter(tags=["organizations"])


@router.get("/organizations", response_model=Page[OrganizationRead])
async def list_organizations(
    session: Session,
    caller: OrganizationsReader,
    limit: Limit = 50,
    cursor: Cursor = None,
    parent_id: Annotated[uuid.UUID | None, Query(description="Only the children of this organization.")] = None,
    kind: Annotated[OrganizationKind | None, Query(description="Only organizations of this kind.")] = None,
    erp_customer_no: Annotated[str | None, Query(description="Only the one with this ERP customer number.")] = None,
) -> Page[OrganizationRead]:
    """List the organizations within the caller's reach."""
    page = await service.list_organizations(
        session,
        caller,
        limit=limit,
        cursor=cursor,
        parent_id=parent_id,
        kind=kind,
        erp_customer_no=erp_customer_no,
    )
    return Page(
        items=[OrganizationRead.model_validate(org, from_attributes=True) for org in page.items],
        next_cursor=page.next_cursor,
    )


@router.post("/organizations", response_model=OrganizationRead, status_code=status.HTTP_201_CREATED)
async def create_organization(
    body: OrganizationCreate, session: Session, caller: OrganizationsWriter
) -> OrganizationRead:
    """Create an organization below one the caller administers."""
    organization = await service.create_organization(session, caller, body)
    return OrganizationRead.model_validate(organization, from_attributes=True)


@router.get("/organizations/{organization_id}", response_model=OrganizationRead)
async def get_organization(
    organization_id: uuid.UUID, session: Session, caller: OrganizationsReader
) -> OrganizationRead:
    """Show one organization within the caller's reach."""
    organization = await reach.visible_organization(session, caller, organization_id)
    return OrganizationRead.model_validate(organization, from_attributes=True)


@router.patch(
    "/organizations/{organization_id}",
    response_model=OrganizationRead,
    responses=problems(409, s409="Moving is refused while licenses, orders or grants hang on the node."),
)
async def update_organization(
    organization_id: uuid.UUID, body: OrganizationUpdate, session: Session, caller: OrganizationsWriter
) -> OrganizationRead:
    """Change some keys of an organization the caller administers; moving is refused once rights hang on it."""
    organization = await service.update_organization(session, caller, organization_id, body.changes())
    return OrganizationRead.model_validate(organization, from_attributes=True)


@router.delete(
    "/organizations/{organization_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(409, s409="The organization has children, licenses or orders, or is the vendor."),
)
async def delete_organization(organization_id: uuid.UUID, session: Session, caller: OrganizationsWriter) -> None:
    """Delete an organization without children, licenses or orders (administrators above it only)."""
    await service.delete_organization(session, caller, organization_id)


@router.put(
    "/organizations/{organization_id}/members/{user_id}",
    response_model=MembershipRead | InvitationRead,
    responses={202: {"model": InvitationRead, "description": "Not a member yet: invited, joins on redeeming."}},
)
async def put_member(
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    body: MembershipUpdate,
    session: Session,
    state: State,
    caller: OrganizationsWriter,
    response: Response,
) -> MembershipRead | InvitationRead:
    """Change a member's role in an administered organization, or invite a visible user to join it (202)."""
    policy = InvitationPolicy.from_settings(state.settings)
    result = await users.put_member(session, caller, organization_id, user_id, body.role, policy)
    if isinstance(result, Invitation):
        response.status_code = status.HTTP_202_ACCEPTED
        return InvitationRead.model_validate(result, from_attributes=True)
    return MembershipRead.model_validate(result, from_attributes=True)


@router.delete("/organizations/{organization_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_member(
    organization_id: uuid.UUID, user_id: uuid.UUID, session: Session, caller: OrganizationsWriter
) -> None:
    """Remove a user from an organization the caller administers; its tickets held by them go back to it."""
    await users.remove_member(session, caller, organization_id, user_id)


async def _grant_read(session: Session, grant: Grant, group_code: str) -> GrantRead:
    return _grant_fields(grant, group_code, await quota.remaining_quota(session, grant.id))


def _grant_fields(grant: Grant, group_code: str, remaining: int | None) -> GrantRead:
    return GrantRead(
        id=grant.id,
        organization_id=grant.organization_id,
        product_group=group_code,
        permissions=grant.permissions,
        quota=grant.quota,
        quota_used=grant.quota_used,
        quota_remaining=remaining,
        delegable=grant.delegable,
        delegated_from=grant.parent_grant_id,
        granted_by_user_id=grant.granted_by_user_id,
        updated_at=grant.updated_at,
    )


@router.get("/organizations/{organization_id}/members", response_model=Page[MemberRead])
async def list_members(
    organization_id: uuid.UUID, session: Session, caller: OrganizationsReader, limit: Limit = 50, cursor: Cursor = None
) -> Page[MemberRead]:
    """List the members of an organization with their roles (administrators of it or above)."""
    page = await service.list_members(session, caller, organization_id, limit=limit, cursor=cursor)
    return Page(
        items=[MemberRead(user_id=user.id, email=user.email, name=user.name, role=role) for user, role in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/organizations/{organization_id}/grants", response_model=Page[GrantRead])
async def list_grants(
    organization_id: uuid.UUID, session: Session, caller: OrganizationsReader, limit: Limit = 50, cursor: Cursor = None
) -> Page[GrantRead]:
    """List the live grants of an organization, each with its remaining quota."""
    page = await grants.list_grants(session, caller, organization_id, limit=limit, cursor=cursor)
    return Page(
        items=[_grant_fields(item.grant, item.product_group, item.remaining) for item in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/organizations/{organization_id}/grants/{product_group}", response_model=GrantRead)
async def get_grant(
    organization_id: uuid.UUID, product_group: str, session: Session, caller: OrganizationsReader
) -> GrantRead:
    """Show what an organization may do on a product group."""
    grant, _group = await grants.get_grant(session, caller, organization_id, product_group)
    return await _grant_read(session, grant, product_group)


@router.put(
    "/organizations/{organization_id}/grants/{product_group}",
    response_model=GrantRead,
    responses={
        201: {"model": GrantRead, "description": "The organization held no grant on the group before."},
        **problems(409, s409="The change would leave delegated grants or created licenses above the new bounds."),
    },
)
async def put_grant(
    organization_id: uuid.UUID,
    product_group: str,
    body: GrantUpdate,
    session: Session,
    caller: OrganizationsWriter,
    response: Response,
) -> GrantRead:
    """Grant or change rights on a product group: vendor admins, or admins above holding a delegable grant."""
    values = grants.GrantValues(permissions=frozenset(body.permissions), quota=body.quota, delegable=body.delegable)
    grant, created = await grants.put_grant(session, caller, organization_id, product_group, values)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return await _grant_read(session, grant, product_group)


@router.delete("/organizations/{organization_id}/grants/{product_group}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_grant(
    organization_id: uuid.UUID, product_group: str, session: Session, caller: OrganizationsWriter
) -> None:
    """Withdraw a grant and everything delegated from it."""
    await grants.withdraw_grant(session, caller, organization_id, product_group)
