"""Signing in: e-mail and password for a personal API key, rate limited per account and per client address."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from api.deps import Session, State
from api.openapi import problems
from api.schemas.api_keys import ApiKeyCreated, ApiKeyRead
from api.schemas.auth import SignIn
from tessera.auth.signin import sign_in

router = APIRouter(tags=["sign-in"])


@router.post(
    "/auth/keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 429, s401="The e-mail address or the password is wrong (the same answer for both)."),
)
async def create_personal_key(body: SignIn, request: Request, session: Session, state: State) -> ApiKeyCreated:
    """Exchange e-mail and password for a personal API key (shown once); 401 alike for any wrong pair."""
    key, secret = await sign_in(
        session,
        state.secret_key,
        state.sign_in_limiter,
        email=body.email,
        password=body.password,
        client=request.client.host if request.client else "unknown",
        key_name=body.name,
        scopes=body.scopes,
        expires_at=body.expires_at,
    )
    read = ApiKeyRead.model_validate(key, from_attributes=True)
    return ApiKeyCreated(**read.model_dump(), secret=secret)
