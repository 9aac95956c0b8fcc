"""Activations: a ticket code turns into a license on a container; refresh; return. No API key needed: the code
or the activation secret is the credential, and failed look-ups are rate limited."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import AppState, State
from api.openapi import problems
from api.schemas.activations import (
    ActivationCreate,
    ActivationCreated,
    ActivationRefresh,
    ActivationReturn,
    ActivationReturnedRead,
    CertificateRead,
)
from tessera.activation import offline, returns, service
from tessera.activation import refresh as refreshing
from tessera.activation.errors import OfflineRequestTooLarge
from tessera.activation.models import ActivationStatus
from tessera.activation.runtime import ActivationRuntime
from tessera.apikeys import authenticate
from tessera.db import unit_of_work
from tessera.models import utcnow
from tessera.principal import Principal
from tessera.rights import scopes
from workflows.subscription_ops import send_first_activation

log = logging.getLogger(__name__)
router = APIRouter(tags=["activations"])


def activation_runtime(request: Request) -> ActivationRuntime:
    runtime: ActivationRuntime = request.app.state.activation
    return runtime


Runtime = Annotated[ActivationRuntime, Depends(activation_runtime)]
_bearer = HTTPBearer(auto_error=False, description="Optional: an API key, which narrows the tickets to its reach.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def optional_principal(state: State, credentials: Credentials, scope: str) -> Principal | None:
    """The caller of an API key, when one came along (the code or secret suffices without)."""
    if credentials is None:
        return None
    async with unit_of_work(state.session_factory) as session:
        principal = await authenticate(session, state.secret_key, credentials.credentials)
    scopes.require_scope(principal, scope)
    return principal


async def signal_first_activation(state: AppState, subscription_id: uuid.UUID, activated_at: datetime) -> None:
    """After the commit, the fast path: the commit recorded the first activation, which the worker's relay hands
    on if this signal does not arrive; the workflow anchors once however often it is told."""
    try:
        await send_first_activation(state.temporal, subscription_id, activated_at)
    except Exception:  # the activation and its hand-over stand: the relay sends the signal
        log.warning("could not signal subscription %s of its first activation", subscription_id)


@router.post(
    "/activations",
    response_model=ActivationCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problems(
        404,
        409,
        422,
        429,
        s404="No ticket with this code (or none within the reach of the API key sent along).",
        s409="The ticket is revoked or expired, or active in as many containers as its product allows.",
    ),
)
async def create_activation(
    body: ActivationCreate,
    request: Request,
    response: Response,
    state: State,
    runtime: Runtime,
    credentials: Credentials,
) -> ActivationCreated:
    """Activate a ticket into a container: 201 with the secret (shown once) and the license certificate; 200 when
    it was active in that container already (same activation, new secret)."""
    principal = await optional_principal(state, credentials, "activations:write")
    async with unit_of_work(state.session_factory) as session:
        done = await service.activate(
            session, runtime, body.code, body.container, client=client_of(request), principal=principal
        )
    if done.pending_subscription_id is not None:
        await signal_first_activation(state, done.pending_subscription_id, done.activated_at)
    if not done.created:
        response.status_code = status.HTTP_200_OK
    return ActivationCreated(
        activation_id=done.activation_id, secret=done.secret, license_id=done.license_id, certificate=done.certificate
    )


@router.post(
    "/activations/{activation_id}/refresh",
    response_model=CertificateRead,
    responses=problems(
        404, 409, 429, s404="No activation with this id and secret.", s409="The activation was returned."
    ),
)
async def refresh_activation(activation_id: uuid.UUID, body: ActivationRefresh, request: Request) -> Response:
    """A fresh certificate for an activation: the license as it is now (renewed, revoked), with a higher `seq`."""
    # Well-formed refreshes are answered before routing (api.fast_refresh); this route answers the rest.
    answer = await refresh_answer(activation_runtime(request), activation_id, body.secret, client_of(request))
    return Response(answer, media_type="application/json")


async def refresh_answer(runtime: ActivationRuntime, activation_id: uuid.UUID, secret: str, client: str) -> bytes:
    """The JSON answer of a refresh: one committed statement, then the signature."""
    now = utcnow()
    # The key before the first statement (see SigningKeys).
    await runtime.keys.signer(now + runtime.certificate_ttl)
    facts, seq = await refreshing.refresh_once(runtime, activation_id, secret, client, now)
    certificate = await refreshing.certificate_for(runtime, facts, seq, now)
    # A compact JWS is base64url and dots: nothing in it needs escaping in a JSON string.
    return b'{"certificate":"' + certificate.encode("ascii") + b'"}'


@router.delete(
    "/activations/{activation_id}",
    response_model=ActivationReturnedRead,
    responses=problems(
        404,
        409,
        429,
        s404="No activation with this id and secret, or none the API key's owner administers.",
        s409="The activation was returned already.",
        s429="Too many failed attempts, or the ticket has moved as often as allowed in the period (`Retry-After`).",
    ),
)
async def return_activation(
    activation_id: uuid.UUID,
    request: Request,
    state: State,
    runtime: Runtime,
    credentials: Credentials,
    body: ActivationReturn | None = None,
) -> ActivationReturnedRead:
    """Return an activation (with its secret, or an API key of an administrator over the ticket): the slot is
    free and the ticket can be activated into another container."""
    secret = body.secret if body else None
    principal = None if secret is not None else await optional_principal(state, credentials, "activations:write")
    async with unit_of_work(state.session_factory) as session:
        done = await returns.return_activation(
            session, runtime, activation_id, secret=secret, principal=principal, client=client_of(request)
        )
    return ActivationReturnedRead(
        activation_id=done.activation_id,
        status=ActivationStatus.returned,
        returned_at=done.returned_at,
        moves_left=done.moves_left,
    )


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its `$defs` put in place, to stand alone in the OpenAPI document."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                return resolve(definitions[reference.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it grows beyond `limit` bytes (before the rest is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise OfflineRequestTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise OfflineRequestTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/activations/offline",
    response_model=offline.OfflineUpdate,
    responses=problems(
        404,
        409,
        413,
        422,
        429,
        s404="No ticket with this code, or no activation with this id and secret.",
        s409="Replayed (an older `last_seq`), the nonce answered another request, or the ticket cannot be activated.",
        s413=f"The request file is larger than {offline.MAX_REQUEST_BYTES} bytes.",
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inlined(offline.OfflineRequest.model_json_schema())}},
        }
    },
)
async def offline_activation(request: Request, state: State, runtime: Runtime) -> offline.OfflineUpdate:
    """Answer a device's offline request file with its update file (the same request again: the same answer)."""
    parsed = offline.parse_request(await _read_limited(request, offline.MAX_REQUEST_BYTES))
    answered = await offline.answer_committed(state.session_factory, runtime, parsed, client=client_of(request))
    if answered.pending_subscription_id is not None:
        await signal_first_activation(state, answered.pending_subscription_id, answered.activated_at)
    return answered.update
