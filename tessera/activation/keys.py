"""Signing keys: Ed25519 pairs that sign license certificates, stored encrypted, published as a JWKS.

The first key is created on first use; `tessera keys rotate` adds a newer one, which signs from then on. The
private key is stored only encrypted with AES-GCM under a key derived (HKDF) from the deployment secret ring,
with the `kid` as authenticated data, so it opens after a rotation of `TESSERA_SECRET_KEY` as well.

A retired key stays in the JWKS until every certificate it signed has expired. To know when that is without a
write per certificate, a process raises the key's `signed_until` ahead of signing (by a day's margin), so the
stored value is always at least the latest `exp` signed, and it is written about once a day per process.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from joserfc.jwk import OKPKey
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.activation.inserts import insert_unless_present
from tessera.activation.models import SigningKey
from tessera.auth.keyring import as_ring
from tessera.models import utcnow

log = logging.getLogger(__name__)
ALGORITHM = "EdDSA"
_NONCE = 12
COVER_MARGIN = timedelta(days=1)
"""How far beyond the `exp` being signed `signed_until` is raised, so it is written about once a day."""
CACHE_SECONDS = 30.0
"""How long a process signs with the key it read before looking again: a rotation takes effect within it."""


def _key(secret_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tessera signing keys", info=b"encrypt v1").derive(
        bytes(secret_key)
    )


def encrypt_private_key(secret_key: bytes, kid: str, private_bytes: bytes) -> bytes:
    nonce = secrets.token_bytes(_NONCE)
    return nonce + AESGCM(_key(as_ring(secret_key).current)).encrypt(nonce, private_bytes, kid.encode())


def decrypt_private_key(secret_key: bytes, kid: str, blob: bytes) -> bytes:
    """Open with whichever secret of the ring sealed it."""
    for candidate in as_ring(secret_key).secrets:
        try:
            return AESGCM(_key(candidate)).decrypt(blob[:_NONCE], blob[_NONCE:], kid.encode())
        except InvalidTag:
            continue
    raise InvalidTag("no secret of the key ring opens this signing key")


def public_jwk(public_key: bytes, kid: str | None = None) -> dict[str, str]:
    """The public key as an OKP/Ed25519 JWK (RFC 8037), with its `kid`, `alg` and `use`."""
    key = OKPKey.import_key(Ed25519PublicKey.from_public_bytes(public_key))
    jwk = {name: str(value) for name, value in key.as_dict(private=False).items()}
    jwk.update(kid=kid or key.thumbprint(), alg=ALGORITHM, use="sig")
    return jwk


def _new_key(secret_key: bytes, generation: int) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    public_bytes = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    private_bytes = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    kid = OKPKey.import_key(private.public_key()).thumbprint()
    return SigningKey(
        generation=generation,
        kid=kid,
        public_key=public_bytes,
        private_key_encrypted=encrypt_private_key(secret_key, kid, private_bytes),
    )


async def newest_key(session: AsyncSession) -> SigningKey | None:
    return await session.scalar(select(SigningKey).order_by(SigningKey.generation.desc()).limit(1))


async def ensure_signing_key(session: AsyncSession, secret_key: bytes) -> SigningKey:
    """The key that signs now, creating the first one if there is none; the caller commits.

    Two processes starting at once both try generation 1: the unique constraint lets one insert win, the other's
    does nothing and it reads the winner's key.
    """
    key = await newest_key(session)
    if key is not None:
        return key
    candidate = _new_key(secret_key, generation=1)
    values = {column: getattr(candidate, column) for column in ("generation", "kid", "public_key")}
    values |= {"id": uuid.uuid4(), "private_key_encrypted": candidate.private_key_encrypted, "created_at": utcnow()}
    await insert_unless_present(session, SigningKey.__table__, values, "generation")  # type: ignore[arg-type]
    key = await newest_key(session)
    assert key is not None, "a first signing key was inserted"
    return key


async def rotate_signing_key(session: AsyncSession, secret_key: bytes, now: datetime | None = None) -> SigningKey:
    """Add a newer key that signs from now on and retire the others (they stay published while needed)."""
    now = now or utcnow()
    current = await session.scalar(select(func.max(SigningKey.generation)))
    key = _new_key(secret_key, generation=(current or 0) + 1)
    session.add(key)
    await session.flush()  # a concurrent rotation to the same generation fails here, on the unique constraint
    await session.execute(
        update(SigningKey)
        .where(SigningKey.generation < key.generation, SigningKey.retired_at.is_(None))
        .values(retired_at=now)
        .execution_options(synchronize_session=False)
    )
    return key


async def list_signing_keys(session: AsyncSession) -> list[SigningKey]:
    return list((await session.scalars(select(SigningKey).order_by(SigningKey.generation.desc()))).all())


async def published_keys(session: AsyncSession, now: datetime | None = None) -> list[SigningKey]:
    """The signing key and every retired key some unexpired certificate may still name."""
    now = now or utcnow()
    query = (
        select(SigningKey)
        .where(or_(SigningKey.retired_at.is_(None), SigningKey.signed_until > now))
        .order_by(SigningKey.generation.desc())
    )
    return list((await session.scalars(query)).all())


def jwks_document(keys: list[SigningKey]) -> dict[str, list[dict[str, str]]]:
    return {"keys": [public_jwk(key.public_key, key.kid) for key in keys]}


@dataclass
class Signer:
    """The signing key as a process holds it: decrypted, with how far its `signed_until` is known to reach."""

    key_id: uuid.UUID
    kid: str
    private: OKPKey
    signed_until: datetime | None
    read_at: float

    def __repr__(self) -> str:
        # Never print the private key, not even in a traceback.
        return f"Signer(kid={self.kid!r})"


class SigningKeys:
    """The process's view of the signing key, in transactions of its own.

    Its own transactions, because a key (or a raised `signed_until`) must be committed before a certificate
    naming it leaves, whatever happens to the request's transaction. Call `signer(now + ttl)` first in a request,
    before its session takes a connection: the only waits on the database (the first read of the key, a raise of
    `signed_until` about once a day) happen then, so a request never holds one pooled connection while waiting for
    another, and on SQLite never waits for its own write lock. After `CACHE_SECONDS` the key is read again in the
    background (a rotation takes effect then) while requests go on signing with the key they have; the new key's
    `signed_until` is raised before it is used.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        secret_key: bytes,
        horizon: timedelta = timedelta(days=30),
    ) -> None:
        self._sessions = session_factory
        self._secret_key = secret_key
        self._horizon = horizon
        self._signer: Signer | None = None
        self._loading = asyncio.Lock()
        self._covering = asyncio.Lock()
        self._reload: asyncio.Task[None] | None = None

    def forget(self) -> None:
        """Read the key again, before signing, at the next use (after a rotation in this process)."""
        self._signer = None

    async def current(self) -> Signer:
        """The key that signs now (created if there is none yet), as last read."""
        signer = self._signer
        if signer is None:
            async with self._loading:  # one first read, however many requests arrive at once
                if self._signer is None:
                    self._signer = await self._ready(await self._load())
                signer = self._signer
        elif time.monotonic() - signer.read_at > CACHE_SECONDS and self._reload is None:
            self._reload = asyncio.create_task(self._reload_in_background())
        return signer

    async def signer(self, exp: datetime) -> Signer:
        """The signer for a certificate that expires at `exp`; its key's `signed_until` reaches at least that far."""
        signer = await self.current()
        if signer.signed_until is None or signer.signed_until < exp:
            async with self._covering:
                if signer.signed_until is None or signer.signed_until < exp:
                    signer.signed_until = await self._cover(signer, exp + COVER_MARGIN)
        return signer

    async def _ready(self, signer: Signer) -> Signer:
        """The signer with `signed_until` raised ahead of what the next day's certificates need."""
        needed = utcnow() + self._horizon + COVER_MARGIN / 2
        if signer.signed_until is None or signer.signed_until < needed:
            signer.signed_until = await self._cover(signer, needed + COVER_MARGIN / 2)
        return signer

    async def _reload_in_background(self) -> None:
        try:
            self._signer = await self._ready(await self._load())
        except Exception:  # the key in hand keeps signing; the next use tries again
            log.warning("could not read the signing key again", exc_info=True)
        finally:
            self._reload = None

    async def _load(self) -> Signer:
        async with self._sessions() as session:
            key = await ensure_signing_key(session, self._secret_key)
            await session.commit()
            private = Ed25519PrivateKey.from_private_bytes(
                decrypt_private_key(self._secret_key, key.kid, key.private_key_encrypted)
            )
            return Signer(
                key_id=key.id,
                kid=key.kid,
                private=OKPKey.import_key(private),
                signed_until=key.signed_until,
                read_at=time.monotonic(),
            )

    async def _cover(self, signer: Signer, until: datetime) -> datetime:
        async with self._sessions() as session:
            await session.execute(
                update(SigningKey)
                .where(
                    SigningKey.id == signer.key_id,
                    or_(SigningKey.signed_until.is_(None), SigningKey.signed_until < until),
                )
                .values(signed_until=until)
                .execution_options(synchronize_session=False)
            )
            stored = await session.scalar(select(SigningKey.signed_until).where(SigningKey.id == signer.key_id))
            await session.commit()
        assert stored is not None
        return stored
