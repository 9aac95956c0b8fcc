"""Cloud containers: created for a user or an organization, seen and managed by their owner and administrators.

Reach: the owner sees their own containers (while a member of the container's organization); administrators of
an organization see every container living in its subtree (the organization's own and its members'); vendor
admins see all. Anything else is a 404 like a missing container. Whoever sees a container may manage it (rotate
its credential, release a device, delete it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.cloud import credentials
from tessera.cloud.errors import InvalidCredential
from tessera.cloud.models import CloudContainer, CloudDevice
from tessera.errors import FieldIssue, InvalidInput, NotFound
from tessera.models import Membership, utcnow
from tessera.orders.reads import newest_first_after
from tessera.pagination import PageOf, page_from
from tessera.principal import Principal
from tessera.rights import reach
from tessera.rights.locks import lock_rows

LIST_SCOPE = "cloud-containers"
DEFAULT_NAME = "Cloud container"


@dataclass(frozen=True)
class CredentialFile:
    """What the owner downloads once: enough for the vendor's software to reach the container."""

    cloud_container_id: uuid.UUID
    credential: str
    api_base_url: str


def container_filter(principal: Principal) -> ColumnElement[bool]:
    """Live containers the caller owns or administers (vendor admins: all)."""
    live = CloudContainer.deleted_at.is_(None)
    if principal.vendor_admin:
        return and_(live, true())
    clauses: list[ColumnElement[bool]] = []
    if principal.user_id is not None and principal.member_of:
        # Only while the owner belongs to the container's organization: someone who left it manages nothing there.
        clauses.append(
            and_(
                CloudContainer.user_id == principal.user_id,
                CloudContainer.organization_id.in_(list(principal.member_of)),
            )
        )
    if principal.admin_of:
        clauses.append(CloudContainer.organization_id.in_(reach.subtree_ids(principal.admin_of)))
    return and_(live, or_(*clauses)) if clauses else false()


async def get_container(
    session: AsyncSession, principal: Principal, container_id: uuid.UUID, *, lock: bool = False
) -> CloudContainer:
    if lock:
        await lock_rows(session, CloudContainer.__table__, [container_id])  # type: ignore[arg-type]
    query = select(CloudContainer).where(CloudContainer.id == container_id, container_filter(principal))
    container = await session.scalar(query.execution_options(populate_existing=True))
    if container is None:
        raise NotFound(f"no cloud container {container_id}")
    return container


async def list_containers(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    organization_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
) -> PageOf[CloudContainer]:
    """Newest first."""
    query = select(CloudContainer).where(container_filter(principal))
    if organization_id is not None:
        query = query.where(CloudContainer.organization_id == organization_id)
    if user_id is not None:
        query = query.where(CloudContainer.user_id == user_id)
    query = query.where(newest_first_after(cursor, CloudContainer.created_at, CloudContainer.id, LIST_SCOPE)).order_by(
        CloudContainer.created_at.desc(), CloudContainer.id.desc()
    )
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    return page_from(rows, limit, key=lambda container: (container.created_at, container.id), scope=LIST_SCOPE)


def _home_organization(principal: Principal) -> uuid.UUID:
    """The caller's one organization, when it names none; several memberships need a choice."""
    if principal.service_organization_id is not None:
        return principal.service_organization_id
    memberships = sorted(principal.member_of)
    if len(memberships) == 1:
        return memberships[0]
    message = "you belong to several organizations: name the one the container belongs to"
    if not memberships:
        message = "you belong to no organization: name the one the container belongs to"
    raise InvalidInput(message, issues=[FieldIssue("organization_id", message)])


async def _check_owner(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    is_member = await session.scalar(
        select(Membership.user_id).where(Membership.user_id == user_id, Membership.organization_id == organization_id)
    )
    if user_id == principal.user_id:
        if is_member is None:
            message = "you are not a member of this organization"
            raise InvalidInput(message, issues=[FieldIssue("organization_id", message)])
        return
    await reach.administered_path(session, principal, organization_id, doing="create containers for its members")
    if is_member is None:
        # Said only to its administrators, who see the organization's members anyway.
        message = "this user is not a member of the organization"
        raise InvalidInput(message, issues=[FieldIssue("user_id", message)])


async def create_container(
    session: AsyncSession,
    principal: Principal,
    secret_key: bytes,
    *,
    api_base_url: str,
    name: str | None = None,
    organization_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    for_organization: bool = False,
) -> tuple[CloudContainer, CredentialFile]:
    """A new container and its credential file, which is returned here and never again.

    Without `user_id` and without `for_organization`, the container is the caller's own; `for_organization`
    makes it the organization's (its administrators only); `user_id` names a member an administrator creates it for.
    """
    if for_organization and user_id is not None:
        message = "a container belongs to a user or to the organization, not both"
        raise InvalidInput(message, issues=[FieldIssue("user_id", message)])
    if organization_id is None:
        organization_id = _home_organization(principal)
    path = await reach.path_ids(session, organization_id)
    if not reach.sees_path(principal, path):
        raise InvalidInput("no such organization", issues=[FieldIssue("organization_id", "no such organization")])
    owner: uuid.UUID | None = None
    if for_organization:
        await reach.administered_path(session, principal, organization_id, doing="create its containers")
    else:
        owner = user_id or principal.user_id
        if owner is None:
            message = "a service account owns no containers: create one for the organization or for a member"
            raise InvalidInput(message, issues=[FieldIssue("for_organization", message)])
        await _check_owner(session, principal, organization_id, owner)
    secret = credentials.new_credential()
    digest, version = credentials.credential_hash(secret_key, secret)
    container = CloudContainer(
        id=uuid.uuid4(),
        organization_id=organization_id,
        user_id=owner,
        name=name or DEFAULT_NAME,
        credential_hash=digest,
        credential_version=version,
        credential_generation=1,
        credential_rotated_at=utcnow(),
        created_by_user_id=principal.user_id,
        created_by_api_key_id=principal.api_key_id,
    )
    session.add(container)
    await session.flush()
    return container, CredentialFile(container.id, secret, api_base_url)


async def rotate_credential(
    session: AsyncSession, principal: Principal, secret_key: bytes, container_id: uuid.UUID, *, api_base_url: str
) -> tuple[CloudContainer, CredentialFile]:
    """Replace the credential (the old one stops working at once); rotations of one container take turns."""
    container = await get_container(session, principal, container_id, lock=True)
    secret = credentials.new_credential()
    container.credential_hash, container.credential_version = credentials.credential_hash(secret_key, secret)
    container.credential_generation += 1
    container.credential_rotated_at = utcnow()
    await session.flush()
    return container, CredentialFile(container.id, secret, api_base_url)


async def open_container(
    session: AsyncSession, secret_key: bytes, container_id: uuid.UUID, credential: str, *, lock: bool = False
) -> CloudContainer:
    """The live container this credential opens, or InvalidCredential (unknown, deleted and wrong look the same)."""
    hashes = credentials.candidate_hashes(secret_key, credential)
    if not hashes:
        raise InvalidCredential("the cloud container or its credential is unknown")
    if lock:
        await lock_rows(session, CloudContainer.__table__, [container_id])  # type: ignore[arg-type]
    query = select(CloudContainer).where(
        CloudContainer.id == container_id,
        CloudContainer.credential_hash.in_(hashes),
        CloudContainer.deleted_at.is_(None),
    )
    container = await session.scalar(query.execution_options(populate_existing=True))
    if container is None:
        raise InvalidCredential("the cloud container or its credential is unknown")
    return container


async def delete_container(
    session: AsyncSession, principal: Principal, container_id: uuid.UUID, *, at: datetime | None = None
) -> CloudContainer:
    """Mark the container deleted and forget its devices; the caller returns its activations in the same unit."""
    container = await get_container(session, principal, container_id, lock=True)
    container.deleted_at = at or utcnow()
    await session.execute(delete(CloudDevice).where(CloudDevice.container_id == container.id))
    await session.flush()
    return container
