"""The public keys that verify license certificates, for anyone (the vendor's software pins or fetches them)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import State
from api.routes.activations import activation_runtime
from api.schemas.activations import JwksRead
from tessera.activation.keys import jwks_document, published_keys
from tessera.db import unit_of_work

router = APIRouter(tags=["activations"])


class JwkSetResponse(JSONResponse):
    media_type = "application/jwk-set+json"  # RFC 7517, section 8.5


@router.get("/.well-known/jwks.json", response_model=JwksRead, response_class=JwkSetResponse)
async def get_jwks(request: Request, state: State) -> JwkSetResponse:
    """The JWKS (OKP/Ed25519) of the key that signs now and of retired keys whose certificates are not all expired."""
    runtime = activation_runtime(request)
    await runtime.keys.current()  # a deployment has a key from the first look at its keys
    async with unit_of_work(state.session_factory) as session:
        document = jwks_document(await published_keys(session))
    max_age = state.settings.jwks_max_age_seconds
    return JwkSetResponse(document, headers={"Cache-Control": f"public, max-age={max_age}"})
