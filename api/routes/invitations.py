"""Invitations: redeemed with the token from the link; no API key needed (the token is the credential)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Session, State
from api.openapi import problems
from api.schemas.auth import InvitationRedeem, InvitationRedeemed
from api.schemas.organizations import MembershipRead
from tessera.auth import invitations
from tessera.models import Membership

router = APIRouter(tags=["sign-in"])


@router.post(
    "/invitations/redeem",
    response_model=InvitationRedeemed,
    responses=problems(
        404,
        409,
        410,
        s404="No invitation with this token.",
        s409="The invitation was redeemed already.",
        s410="The invitation expired, or a newer one replaced it.",
    ),
)
async def redeem_invitation(body: InvitationRedeem, session: Session, state: State) -> InvitationRedeemed:
    """Accept an invitation: activate the account (setting its password if it has none) and the membership."""
    user, invitation = await invitations.redeem_invitation(
        session,
        invitations.InvitationPolicy.from_settings(state.settings),
        token=body.token,
        email=body.email,
        password=body.password,
        name=body.name,
    )
    membership = (
        await session.get(Membership, (user.id, invitation.organization_id)) if invitation.organization_id else None
    )
    return InvitationRedeemed(
        user_id=user.id,
        email=user.email,
        membership=MembershipRead.model_validate(membership, from_attributes=True) if membership else None,
    )
