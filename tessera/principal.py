"""Who is calling: the user or service account behind an API key, with its memberships."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from tessera.models import Role


@dataclass(frozen=True)
class Principal:
    api_key_id: uuid.UUID
    user_id: uuid.UUID | None
    service_organization_id: uuid.UUID | None
    scopes: frozenset[str]
    roles: dict[uuid.UUID, Role] = field(default_factory=dict)
    """Direct memberships: organization id -> role (a service account acts as admin of its organization)."""
    vendor_admin: bool = False

    @property
    def label(self) -> str:
        return f"user {self.user_id}" if self.user_id else f"service account of {self.service_organization_id}"

    @property
    def admin_of(self) -> frozenset[uuid.UUID]:
        """Organizations this caller administers directly; their subtrees are its reach."""
        return frozenset(org for org, role in self.roles.items() if role == Role.admin)

    @property
    def member_of(self) -> frozenset[uuid.UUID]:
        """Every organization the caller belongs to, whatever the role."""
        return frozenset(self.roles)
