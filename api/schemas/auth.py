"""Bodies of invitations and sign-in: tokens and passwords travel in bodies only, never in URLs or answers."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, ConfigDict, Field

from api.schemas.organizations import MembershipRead
from tessera.models import Role
from tessera.organizations.schema import Email
from tessera.schema_base import StrictModel

PASSWORD_FIELD = Field(min_length=1, max_length=1024, description="At least 12 characters, not a common password.")


class InvitationRead(StrictModel):
    """An invitation as its sender sees it: never the token, never facts about the invited account."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    email: str
    organization_id: uuid.UUID | None
    role: Role
    expires_at: datetime
    created_at: datetime


class InvitationRedeem(StrictModel):
    token: str = Field(min_length=1, max_length=200, description="The token from the invitation link.")
    email: Email = Field(description="The address the invitation was sent to.")
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="The new password; required when the account has none yet, refused when it has one.",
    )
    name: str | None = Field(default=None, min_length=1, max_length=200, description="Your name, for a new account.")


class InvitationRedeemed(StrictModel):
    user_id: uuid.UUID
    email: str
    membership: MembershipRead | None


class SignIn(StrictModel):
    """E-mail and password for a personal API key, which carries the account's rights (narrowed by scopes)."""

    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    name: str = Field(default="signed in", min_length=1, max_length=200, description="Tells your keys apart.")
    scopes: list[str] = Field(default_factory=lambda: ["*"], min_length=1, description="e.g. tickets:read; * = all")
    expires_at: AwareDatetime | None = Field(default=None, description="Default: in 30 days; at most a year.")
