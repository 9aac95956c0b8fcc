"""`POST /activations/{id}/recover`: who may ask (the ticket's holder, administrators over it), what others are told,
and a request recorded while Temporal is away is repaired by repeating it. Temporal is not running here."""

from __future__ import annotations

import asyncio
import uuid

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.activation.recovery_models import ActivationRecovery
from tests.conftest import RightsWorld, bearer

ACTIVATIONS = "/api/v1/activations"


async def _activate(api: AsyncClient, code: str, fingerprint: str = "device-recovery-1") -> dict[str, str]:
    answer = await api.post(
        ACTIVATIONS, json={"code": code, "container": {"kind": "software", "fingerprint": fingerprint}}
    )
    assert answer.status_code == 201, answer.text
    activated: dict[str, str] = answer.json()
    return activated


async def _recover(api: AsyncClient, world: RightsWorld, who: str, activation_id: str) -> tuple[int, str]:
    answer = await api.post(f"{ACTIVATIONS}/{activation_id}/recover", headers=bearer(world.keys[who]))
    return answer.status_code, answer.json().get("code", "")


async def _recoveries(sessions: async_sessionmaker[AsyncSession], activation_id: str) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).where(ActivationRecovery.activation_id == uuid.UUID(activation_id))
        )
        return count or 0


async def test_who_may_recover_and_what_the_others_are_told(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    w = rights_world
    named = await _activate(api, w.codes["own_named"])  # allocated by name to customer_member
    shared = await _activate(api, w.codes["own"], "device-recovery-2")  # the organization's, all members see it
    for stranger in ("sibling_admin", "foreign_admin", "subgroup_member", "m_C2", "vendor_staff"):
        assert await _recover(api, w, stranger, named["activation_id"]) == (404, "not-found"), stranger
    # Members who see the ticket but do not hold it may not take it from its device.
    assert await _recover(api, w, "m_C1", shared["activation_id"]) == (403, "forbidden")
    assert await _recover(api, w, "customer_member", shared["activation_id"]) == (403, "forbidden")
    assert await _recoveries(sessions, shared["activation_id"]) == 0
    unknown = str(uuid.uuid4())
    assert await _recover(api, w, "vendor_admin", unknown) == (404, "not-found")
    # The holder and an administrator above pass every check; the workflow service is away: 503, recorded once.
    assert (await _recover(api, w, "customer_member", named["activation_id"]))[0] == 503
    assert (await _recover(api, w, "reseller_admin", named["activation_id"]))[0] == 503
    assert await _recoveries(sessions, named["activation_id"]) == 1
    read = await api.get(f"{ACTIVATIONS}/{named['activation_id']}/recovery", headers=bearer(w.keys["customer_admin"]))
    assert (read.status_code, read.json()["status"]) == (200, "pending")
    hidden = await api.get(f"{ACTIVATIONS}/{named['activation_id']}/recovery", headers=bearer(w.keys["sibling_admin"]))
    assert hidden.status_code == 404
    none_yet = await api.get(
        f"{ACTIVATIONS}/{shared['activation_id']}/recovery", headers=bearer(w.keys["customer_admin"])
    )
    assert none_yet.status_code == 404
    # Nothing waits for a decision until the workflow runs one; decisions on a stranger's are 404.
    assert (
        await api.post(
            f"{ACTIVATIONS}/{shared['activation_id']}/recover/approve", headers=bearer(w.keys["vendor_admin"])
        )
    ).status_code == 404


async def test_a_returned_activation_has_nothing_to_recover(api: AsyncClient, rights_world: RightsWorld) -> None:
    activated = await _activate(api, rights_world.codes["own"])
    returned = await api.request(
        "DELETE", f"{ACTIVATIONS}/{activated['activation_id']}", json={"secret": activated["secret"]}
    )
    assert returned.status_code == 200, returned.text
    assert await _recover(api, rights_world, "customer_admin", activated["activation_id"]) == (
        409,
        "activation-not-active",
    )


async def test_clumsy_requests(api: AsyncClient, rights_world: RightsWorld) -> None:
    auth = bearer(rights_world.keys["customer_admin"])
    assert (await api.post(f"{ACTIVATIONS}/not-a-uuid/recover", headers=auth)).status_code == 422
    assert (await api.post(f"{ACTIVATIONS}/{uuid.uuid4()}/recover")).status_code == 401
    activated = await _activate(api, rights_world.codes["own"])
    extra = await api.post(f"{ACTIVATIONS}/{activated['activation_id']}/recover/approve", json={"x": 1}, headers=auth)
    assert extra.status_code == 422


async def test_concurrent_requests_record_one_recovery(
    api: AsyncClient, rights_world: RightsWorld, sessions: async_sessionmaker[AsyncSession]
) -> None:
    activated = await _activate(api, rights_world.codes["own"])
    path = f"{ACTIVATIONS}/{activated['activation_id']}/recover"
    auth = bearer(rights_world.keys["customer_admin"])
    answers = await asyncio.gather(*(api.post(path, headers=auth) for _ in range(10)))
    assert {answer.status_code for answer in answers} == {503}, [a.text for a in answers]  # recorded; Temporal away
    assert await _recoveries(sessions, activated["activation_id"]) == 1
