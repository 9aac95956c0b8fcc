"""Refresh: the device presents its activation id and secret and gets a fresh certificate with a higher `seq`.

The hot path, so one Core statement and no ORM session: `UPDATE ... SET seq = seq + 1 ... RETURNING` everything
the certificate says (activation, license, product, ticket), matching only the row whose secret hash is right and
that can be refreshed. It runs alone on a connection in autocommit: one statement is its own transaction, as
atomic and as durable as one inside BEGIN ... COMMIT, without their extra round trips. On SQLite that also means
the write lock is held only while the statement runs in the driver's thread, commit included, never across turns
of the event loop, so concurrent refreshes meet it only briefly (in SQLite's busy handler). Signing, with the
process's cached key, follows the commit. Only when no row changed does a plain read tell why (an unknown id or a
wrong secret counts as a failure). A renewed subscription's licenses carry their new `expires_at`, a revoked
license (or ticket) comes back `revoked`, and so does an activation recovered from a lost device; a returned
activation is refused (its slot may be someone else's now).
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, Table, bindparam, column, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.selectable import TextualSelect

from tessera.activation import secrets as activation_secrets
from tessera.activation.certificates import LicenseFacts
from tessera.activation.errors import ActivationNotFound, ActivationReturned
from tessera.activation.models import Activation, ActivationStatus
from tessera.activation.runtime import ActivationRuntime
from tessera.activation.service import issue_certificate
from tessera.activation.service import next_seq as next_seq
from tessera.db import is_disconnect
from tessera.models import License, LicenseStatus, Product, Ticket, utcnow

_activation: Table = Activation.__table__  # type: ignore[assignment]
_license: Table = License.__table__  # type: ignore[assignment]
_product: Table = Product.__table__  # type: ignore[assignment]
_ticket: Table = Ticket.__table__  # type: ignore[assignment]

# Built once, with the id as a bound parameter: the statement is compiled once per process.
_COLUMNS = (
    _activation.c.secret_hash,
    _activation.c.status,
    _activation.c.container_id,
    _activation.c.license_id,
    _activation.c.ticket_id,
    _activation.c.seq,
    _license.c.status.label("license_status"),
    _license.c.expires_at,
    _license.c.fields,
    _license.c.modules,
    _product.c.code,
    _ticket.c.status.label("ticket_status"),
)
_READ = (
    select(*_COLUMNS)
    .select_from(
        _activation.join(_license, _license.c.id == _activation.c.license_id)
        .join(_product, _product.c.id == _license.c.product_id)
        .join(_ticket, _ticket.c.id == _activation.c.ticket_id)
    )
    .where(_activation.c.id == bindparam("activation_id"))
)


@dataclass(frozen=True)
class ActivationFacts:
    """An activation as refresh and offline updates read it."""

    activation_id: uuid.UUID
    ticket_id: uuid.UUID
    secret_hash: bytes
    status: str
    container_id: str
    seq: int
    """Certificates issued so far (as read: a refresh running at the same time may raise it)."""
    license: LicenseFacts


Executor = AsyncSession | AsyncConnection
"""Refresh reads through either: the API's refresh a bare connection, offline updates the request's session."""

# The counter raised, and when.
_RAISED = {"seq": _activation.c.seq + 1, "refreshed_at": bindparam("now"), "updated_at": bindparam("now")}


# PostgreSQL: UPDATE ... FROM the joined tables, RETURNING their columns; only a row whose secret hash matches
# and that can be refreshed is updated. The hashes and statuses as fixed parameters, one statement per size of the
# secret ring: an expanding IN list is rendered into the statement again at every execution, and an array
# parameter costs psycopg a look at its items to choose its type.
@functools.cache
def _refresh_returning(hashes: int) -> Executable:
    return (
        update(_activation)
        .where(
            _activation.c.id == bindparam("activation_id"),
            or_(*(_activation.c.secret_hash == bindparam(f"hash_{n}") for n in range(hashes))),
            or_(_activation.c.status == ActivationStatus.active, _activation.c.status == ActivationStatus.recovered),
            _license.c.id == _activation.c.license_id,
            _product.c.id == _license.c.product_id,
            _ticket.c.id == _activation.c.ticket_id,
        )
        .values(_RAISED)
        .returning(*_COLUMNS)
    )


# SQLite: RETURNING may not name an UPDATE's FROM tables, but it may hold scalar subqueries over them. Written
# out, because SQLAlchemy renders the columns of a RETURNING clause, and so those of its subqueries, unqualified.
# The hashes as fixed parameters, one statement per size of the secret ring: an expanding IN list is rendered into
# the statement again at every execution.
@functools.cache
def _refresh_returning_sqlite(hashes: int) -> TextualSelect:
    names = [f"hash_{n}" for n in range(hashes)]
    return (
        text(
            "UPDATE activation SET seq = seq + 1, refreshed_at = :now, updated_at = :now"
            f" WHERE id = :activation_id AND secret_hash IN ({', '.join(':' + name for name in names)})"
            " AND status IN (:active, :recovered)"
            " RETURNING secret_hash, status, container_id, license_id, ticket_id, seq,"
            " (SELECT l.status FROM license AS l WHERE l.id = activation.license_id) AS license_status,"
            " (SELECT l.expires_at FROM license AS l WHERE l.id = activation.license_id) AS expires_at,"
            " (SELECT l.fields FROM license AS l WHERE l.id = activation.license_id) AS fields,"
            " (SELECT l.modules FROM license AS l WHERE l.id = activation.license_id) AS modules,"
            " (SELECT p.code FROM license AS l JOIN product AS p ON p.id = l.product_id"
            " WHERE l.id = activation.license_id) AS code,"
            " (SELECT t.status FROM ticket AS t WHERE t.id = activation.ticket_id) AS ticket_status"
        )
        .bindparams(
            bindparam("now", type_=_activation.c.updated_at.type),
            bindparam("activation_id", type_=_activation.c.id.type),
            *(bindparam(name, type_=_activation.c.secret_hash.type) for name in names),
            bindparam("active", ActivationStatus.active.value, type_=_activation.c.status.type),
            bindparam("recovered", ActivationStatus.recovered.value, type_=_activation.c.status.type),
        )
        .columns(*(column(str(c.name), c.type) for c in _COLUMNS))
    )


async def read_activation(executor: Executor, activation_id: uuid.UUID) -> ActivationFacts | None:
    """Everything a certificate for this activation says, in one statement."""
    row = (await executor.execute(_READ, {"activation_id": activation_id})).first()
    return None if row is None else _facts(activation_id, row)


async def refresh_once(
    runtime: ActivationRuntime, activation_id: uuid.UUID, secret: str, client: str, now: datetime
) -> tuple[ActivationFacts, int]:
    """Authenticate, raise `seq` and read the facts (with the new `seq`) in one committed statement.

    When it changes no row, the plain read tells why (and counts a failure).
    """
    await runtime.limiter.check(client)
    hashes = activation_secrets.candidate_hashes(runtime.secret_key, secret)
    parameters: dict[str, Any] = {"activation_id": activation_id, "now": now}
    parameters.update((f"hash_{n}", digest) for n, digest in enumerate(hashes))
    engine = runtime.refresh_engine
    sqlite = engine.dialect.name == "sqlite"
    statement = _refresh_returning_sqlite(len(hashes)) if sqlite else _refresh_returning(len(hashes))
    for attempt in (1, 2):
        try:
            async with engine.connect() as connection:
                row = (await connection.execute(statement, parameters)).first()
                if row is None:
                    await authenticated_activation(connection, runtime, activation_id, secret, client)
                    raise ActivationReturned  # authenticated, yet not refreshable a moment ago: returned meanwhile
            break
        except DBAPIError as error:
            # The refresh pool does not ping: a connection found dead is tried again once on a fresh one. Had the
            # statement committed before the connection died, `seq` rises twice; numbers are still never reused.
            if attempt == 2 or not is_disconnect(error):
                raise
    facts = _facts(activation_id, row)
    return facts, facts.seq


def _facts(activation_id: uuid.UUID, row: Any) -> ActivationFacts:  # a row of _COLUMNS
    license_status = row.license_status
    if row.status == ActivationStatus.recovered:
        license_status = LicenseStatus.revoked  # taken back from a lost device: that device must stop
    return ActivationFacts(
        activation_id=activation_id,
        ticket_id=row.ticket_id,
        secret_hash=row.secret_hash,
        status=row.status,
        container_id=row.container_id,
        seq=row.seq,
        license=LicenseFacts(
            license_id=row.license_id,
            product_code=row.code,
            modules=list(row.modules or []),
            fields=dict(row.fields or {}),
            license_status=license_status,
            ticket_status=row.ticket_status,
            expires_at=row.expires_at,
        ),
    )


async def authenticated_activation(
    executor: Executor, runtime: ActivationRuntime, activation_id: uuid.UUID, secret: str, client: str
) -> ActivationFacts:
    """The activation if `secret` is its secret; unknown id and wrong secret alike count as a failure."""
    await runtime.limiter.check(client)
    facts = await read_activation(executor, activation_id)
    if facts is None or not activation_secrets.secret_matches(runtime.secret_key, secret, facts.secret_hash):
        await runtime.limiter.failed(client)
        raise ActivationNotFound
    if facts.status == ActivationStatus.returned:
        raise ActivationReturned
    return facts


async def refresh(
    session: AsyncSession,
    runtime: ActivationRuntime,
    activation_id: uuid.UUID,
    secret: str,
    *,
    client: str,
    now: datetime | None = None,
) -> str:
    """A fresh certificate for the activation in one unit of work; the caller commits.

    The API refreshes in one committed statement instead (`refresh_once`), and signs after the commit.
    """
    now = now or utcnow()
    # The key before this request's first statement (see SigningKeys): its waits never hold a connection.
    await runtime.keys.signer(now + runtime.certificate_ttl)
    facts = await authenticated_activation(session, runtime, activation_id, secret, client)
    return await reissue(session, runtime, facts, now)


async def reissue(session: AsyncSession, runtime: ActivationRuntime, facts: ActivationFacts, now: datetime) -> str:
    """Raise the authenticated activation's `seq` and sign its certificate; the caller commits."""
    seq = await raise_seq(session, facts, now)
    return await certificate_for(runtime, facts, seq, now)


async def raise_seq(session: AsyncSession, facts: ActivationFacts, now: datetime) -> int:
    """The authenticated activation's next `seq`, or ActivationReturned if it was returned meanwhile."""
    seq = await next_seq(session, facts.activation_id, now)
    if seq is None:
        raise ActivationReturned  # returned between the read and the update
    return seq


async def certificate_for(runtime: ActivationRuntime, facts: ActivationFacts, seq: int, now: datetime) -> str:
    """The certificate with `seq` (raised, and best committed, before: a certificate never repeats a number)."""
    return await issue_certificate(
        runtime, facts.license, activation_id=facts.activation_id, container_id=facts.container_id, seq=seq, now=now
    )
