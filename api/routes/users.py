"""Users: the caller itself, and the members of the organizations it administers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import Caller, Cursor, Limit, Session, UsersReader, UsersWriter
from api.openapi import problems
from api.schemas.common import Page
from api.schemas.organizations import MembershipRead
from api.schemas.users import MeRead, UserCreate, UserRead
from tessera.models import User
from tessera.organizations import users

router = APIRouter(tags=["users"])


@router.get("/users", response_model=Page[UserRead])
async def list_users(
    session: Session,
    caller: UsersReader,
    limit: Limit = 50,
    cursor: Cursor = None,
    email: Annotated[str | None, Query(description="Only the user with this e-mail address.")] = None,
) -> Page[UserRead]:
    """List the caller and the members of every organization it administers, ordered by e-mail."""
    page = await users.list_users(session, caller, limit=limit, cursor=cursor, email=email)
    return Page(
        items=[UserRead.model_validate(u, from_attributes=True) for u in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/users",
    response_model=UserRead,
    status_code=status.HTTP_201_CREATED,
    responses=problems(409, s409="A user with this e-mail address exists."),
)
async def create_user(body: UserCreate, session: Session, caller: UsersWriter) -> UserRead:
    """Create a user in an organization the caller administers (an existing address is invited instead)."""
    return UserRead.model_validate(await users.create_user(session, caller, body), from_attributes=True)


@router.get("/users/me", response_model=MeRead)
async def get_me(session: Session, caller: Caller) -> MeRead:
    """Who the API key belongs to, its scopes and memberships."""
    user = await session.get(User, caller.user_id) if caller.user_id else None
    memberships = await users.memberships_of(session, user.id) if user else []
    return MeRead(
        user=UserRead.model_validate(user, from_attributes=True) if user else None,
        api_key_id=caller.api_key_id,
        service_organization_id=caller.service_organization_id,
        scopes=sorted(caller.scopes),
        vendor_admin=caller.vendor_admin,
        memberships=[MembershipRead.model_validate(m, from_attributes=True) for m in memberships],
    )
