"""Offline (file-based) activation: a device's request file in, an update file out.

The request names a ticket code (activate) or an activation id and its secret (refresh), the container, a random
nonce and the `seq` of the newest certificate the device holds. The answer's certificate carries the nonce, so
the device knows the answer is for the request it made. The nonce is claimed first (a unique row per nonce
hash), then the request is answered and the answer stored, encrypted (it may hold a new activation's secret):

- the identical request again returns the identical answer (a device whose update file got lost asks again);
- the same nonce with another request is refused (`offline-nonce-reused`);
- a request whose `last_seq` is older than the newest certificate issued for its activation is refused as a
  replay (`offline-replay`); one naming a certificate never issued as `offline-seq-unknown`.

Request files are small: anything beyond `MAX_REQUEST_BYTES`, any text that is not a JSON object of the schema,
is refused with a 4xx before anything is looked up.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import Field, StringConstraints, model_validator
from sqlalchemy import Table, select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.activation.containers import BindingContext, ContainerSpec, bind_container
from tessera.activation.errors import (
    ContainerMismatch,
    OfflineNonceReused,
    OfflineReplay,
    OfflineRequestMalformed,
    OfflineRequestTooLarge,
)
from tessera.activation.inserts import insert_unless_present
from tessera.activation.models import OfflineExchange
from tessera.activation.refresh import authenticated_activation, next_seq
from tessera.activation.runtime import ActivationRuntime
from tessera.activation.service import activate, check_held_seq, issue_certificate
from tessera.auth.keyring import as_ring
from tessera.db import unit_of_work
from tessera.errors import InvalidInput
from tessera.models import utcnow
from tessera.schema_base import StrictModel, validate_input

_exchange: Table = OfflineExchange.__table__  # type: ignore[assignment]
MAX_REQUEST_BYTES = 4096
REQUEST_FORMAT = "tessera-offline-request/1"
UPDATE_FORMAT: Literal["tessera-offline-update/1"] = "tessera-offline-update/1"
_NONCE = 12

Nonce = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_-]{22,128}$"),
    Field(description="At least 128 random bits, base64url without padding; used once."),
]


class OfflineRequest(StrictModel):
    """A device's request file."""

    format: Literal["tessera-offline-request/1"]
    code: str | None = Field(default=None, min_length=1, max_length=64, description="Activate this ticket; or:")
    activation_id: uuid.UUID | None = Field(default=None, description="Refresh this activation, with its secret.")
    secret: str | None = Field(default=None, min_length=1, max_length=200)
    container: ContainerSpec
    nonce: Nonce
    last_seq: int = Field(ge=0, le=2_147_483_647, description="The `seq` of the newest certificate it holds; 0: none.")

    @model_validator(mode="after")
    def _one_credential(self) -> OfflineRequest:
        by_code = self.code is not None
        by_activation = self.activation_id is not None or self.secret is not None
        if by_code == by_activation:
            raise ValueError("give either `code`, or `activation_id` with `secret`")
        if by_activation and (self.activation_id is None or self.secret is None):
            raise ValueError("`activation_id` and `secret` go together")
        return self


class OfflineUpdate(StrictModel):
    """The update file the device applies."""

    format: Literal["tessera-offline-update/1"] = UPDATE_FORMAT
    activation_id: uuid.UUID
    license_id: uuid.UUID
    secret: str | None = Field(description="A new activation's secret (shown in this file only); else null.")
    certificate: str = Field(description="The license certificate, with the request's nonce as its `nonce` claim.")


@dataclass(frozen=True)
class Answered:
    update: OfflineUpdate
    pending_subscription_id: uuid.UUID | None
    activated_at: datetime
    replayed: bool


class NonceTaken(Exception):
    """Another transaction claimed this nonce at the same moment: read its answer once it committed."""


def parse_request(raw: bytes) -> OfflineRequest:
    """The request file's content, or a 4xx problem: too large, not JSON, not an object, not the schema."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise OfflineRequestTooLarge(MAX_REQUEST_BYTES)
    try:
        data: Any = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise OfflineRequestMalformed("not UTF-8 text") from None
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than any request file has
        raise OfflineRequestMalformed("not JSON") from None
    if not isinstance(data, dict):
        raise OfflineRequestMalformed("not a JSON object")
    try:
        return validate_input(OfflineRequest, data)
    except InvalidInput:
        raise
    except (ValueError, RecursionError):
        raise OfflineRequestMalformed("not a request file") from None


def _hash(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def request_hash(request: OfflineRequest) -> bytes:
    """Of the request as understood (canonical JSON), so spacing or key order do not make it another request."""
    return _hash(json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":")))


def _key(secret_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tessera offline answers", info=b"encrypt v1").derive(
        bytes(secret_key)
    )


def _seal(secret_key: bytes, nonce_hash: bytes, update: OfflineUpdate) -> bytes:
    nonce = secrets.token_bytes(_NONCE)
    sealed = AESGCM(_key(as_ring(secret_key).current)).encrypt(nonce, update.model_dump_json().encode(), nonce_hash)
    return nonce + sealed


def _open(secret_key: bytes, nonce_hash: bytes, blob: bytes) -> OfflineUpdate:
    for candidate in as_ring(secret_key).secrets:
        try:
            text = AESGCM(_key(candidate)).decrypt(blob[:_NONCE], blob[_NONCE:], nonce_hash)
        except InvalidTag:
            continue
        return OfflineUpdate.model_validate_json(text)
    raise InvalidTag("no secret of the key ring opens this offline answer")


async def stored_answer(
    session: AsyncSession, runtime: ActivationRuntime, request: OfflineRequest
) -> OfflineUpdate | None:
    """The answer given to this very request before; OfflineNonceReused if its nonce answered another."""
    nonce_hash = _hash(request.nonce)
    stored = await session.scalar(select(OfflineExchange).where(OfflineExchange.nonce_hash == nonce_hash))
    if stored is None:
        return None
    if stored.request_hash != request_hash(request) or stored.activation_id is None:
        raise OfflineNonceReused
    return _open(runtime.secret_key, nonce_hash, stored.answer_encrypted)


async def answer_request(
    session: AsyncSession,
    runtime: ActivationRuntime,
    request: OfflineRequest,
    *,
    client: str,
    now: datetime | None = None,
) -> Answered:
    """Answer a request file; the caller commits (and, on NonceTaken, asks `stored_answer` in a new transaction)."""
    now = now or utcnow()
    await runtime.keys.signer(now + runtime.certificate_ttl)  # before this transaction writes (see SigningKeys)
    replayed = await stored_answer(session, runtime, request)
    if replayed is not None:
        return Answered(replayed, None, now, replayed=True)
    nonce_hash = _hash(request.nonce)
    # The claim is this transaction's first write: on SQLite every later read in it is current.
    claim_id = await insert_unless_present(
        session,
        _exchange,
        {
            "id": uuid.uuid4(),
            "nonce_hash": nonce_hash,
            "request_hash": request_hash(request),
            "answer_encrypted": b"",
            "created_at": now,
        },
        "nonce_hash",
    )
    if claim_id is None:
        raise NonceTaken
    pending: uuid.UUID | None = None
    if request.code is not None:
        done = await activate(
            session,
            runtime,
            request.code,
            request.container,
            client=client,
            now=now,
            nonce=request.nonce,
            expected_seq=request.last_seq,
        )
        update = OfflineUpdate(
            activation_id=done.activation_id,
            license_id=done.license_id,
            secret=done.secret,
            certificate=done.certificate,
        )
        pending = done.pending_subscription_id
    else:
        assert request.activation_id is not None
        assert request.secret is not None
        update = await _refresh(session, runtime, request, request.activation_id, request.secret, client, now)
    await session.execute(
        sql_update(_exchange)
        .where(_exchange.c.id == claim_id)
        .values(activation_id=update.activation_id, answer_encrypted=_seal(runtime.secret_key, nonce_hash, update))
    )
    return Answered(update, pending, now, replayed=False)


async def answer_committed(
    session_factory: async_sessionmaker[AsyncSession],
    runtime: ActivationRuntime,
    request: OfflineRequest,
    *,
    client: str,
) -> Answered:
    """Answer a request file in a unit of work of its own, committed; then signal what `Answered` names."""
    for attempt in range(2):
        try:
            async with unit_of_work(session_factory) as session:
                return await answer_request(session, runtime, request, client=client)
        except NonceTaken:
            if attempt:
                raise OfflineNonceReused from None
            # The same request at the same moment: the other transaction answered; its answer is read next.
    raise OfflineNonceReused


async def _refresh(
    session: AsyncSession,
    runtime: ActivationRuntime,
    request: OfflineRequest,
    activation_id: uuid.UUID,
    secret: str,
    client: str,
    now: datetime,
) -> OfflineUpdate:
    facts = await authenticated_activation(session, runtime, activation_id, secret, client)
    context = BindingContext(
        ticket_id=facts.ticket_id,
        license_id=facts.license.license_id,
        client=client,
        secret_key=runtime.secret_key,
        now=now,
    )
    bound = await bind_container(session, request.container, context)
    if bound.container_id != facts.container_id:
        raise ContainerMismatch
    check_held_seq(request.last_seq, facts.seq)
    seq = await next_seq(session, activation_id, now, expected=request.last_seq)
    if seq is None:
        raise OfflineReplay(request.last_seq, request.last_seq + 1)  # another certificate was issued meanwhile
    certificate = await issue_certificate(
        runtime,
        facts.license,
        activation_id=activation_id,
        container_id=facts.container_id,
        seq=seq,
        now=now,
        nonce=request.nonce,
    )
    return OfflineUpdate(
        activation_id=activation_id, license_id=facts.license.license_id, secret=None, certificate=certificate
    )
