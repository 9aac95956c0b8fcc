"""Lost-device recovery on the time-skipping server, through the real API and a real worker.

The lock period: the lost activation refreshes as before while the recovery waits, the ticket cannot move yet;
afterwards its refresh answers revoked and the ticket is activated elsewhere. Approvals: approved frees the slot,
rejected leaves the activation untouched. A second request while one runs gets the same run; after, 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tessera.activation.models import Activation
from tessera.activation.recovery_models import ActivationRecovery
from tessera.models import Event
from tessera.settings import Settings
from tests.conftest import RightsWorld, bearer
from tests.workflows.recovery_harness import (
    ACTIVATIONS,
    recovery_stack,
    until,
    waits_for_approval,
    with_recovery_steps,
)
from tests.workflows.test_replay import RECORD, save_history
from tests.workflows.test_replay_recovery import replayer
from workflows import search_attributes as sa

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

STARTED: list[str] = []


@pytest.fixture(autouse=True)
async def _terminate_after(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[None]:
    yield
    # A workflow left waiting would hold the shared time-skipping server's clock for every later test.
    while STARTED:
        with contextlib.suppress(RPCError):
            await time_skipping_env.client.get_workflow_handle(STARTED.pop()).terminate("the test is over")


async def test_the_lock_period_then_the_ticket_moves(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    database_url: str,
) -> None:
    w = rights_world
    async with recovery_stack(time_skipping_env, settings, sessions) as stack:
        lost = await stack.activate(w.codes["own_named"], "lost-laptop-1")
        first = await stack.recover(w, "customer_member", lost["activation_id"])  # the ticket's holder
        assert first.status_code == 202, first.text
        STARTED.append(first.json()["workflow_id"])
        assert first.json()["workflow_id"] == f"recovery-{lost['activation_id']}"
        assert first.json()["status"] == "pending"
        again = await stack.recover(w, "customer_admin", lost["activation_id"])
        assert again.status_code == 202
        assert again.json()["id"] == first.json()["id"]
        handle = stack.handle(lost["activation_id"])
        runs = [(await handle.describe()).run_id for _ in range(2)]
        assert runs[0] == runs[1]
        # While the lock period runs the lost device keeps working, and the ticket cannot move yet.
        assert await stack.license_status(lost) == "active"
        elsewhere = {"kind": "software", "fingerprint": "new-laptop-1"}
        blocked = await stack.api.post(ACTIVATIONS, json={"code": w.codes["own_named"], "container": elsewhere})
        assert (blocked.status_code, blocked.json()["code"]) == (409, "activations-exhausted")
        described = await handle.describe()
        assert described.typed_search_attributes.get(sa.CUSTOMER) == str(w.orgs["C1"])
        assert described.typed_search_attributes.get(sa.PRODUCT) == "PRO-CAD"
        assert str(lost["activation_id"]) in (await described.memo_value("summary"))
        await time_skipping_env.sleep(timedelta(days=7, hours=1))  # the lock period runs out
        state = await handle.result()
        assert state.status == "done"
        assert [entry["kind"] for entry in state.trail] == ["wait", "recover", "notify"]
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
        assert (await handle.describe()).typed_search_attributes.get(sa.STATUS) == "recovered"
        # Recovered: the lost device's refresh says revoked, the ticket moves, a third request is refused.
        assert await stack.license_status(lost) == "revoked"
        moved = await stack.api.post(ACTIVATIONS, json={"code": w.codes["own_named"], "container": elsewhere})
        assert moved.status_code == 201, moved.text
        ended = await stack.recover(w, "customer_member", lost["activation_id"])
        assert (ended.status_code, ended.json()["code"]) == (409, "recovery-ended")
        read = await stack.api.get(
            f"{ACTIVATIONS}/{lost['activation_id']}/recovery", headers=bearer(w.keys["customer_member"])
        )
        assert (read.json()["status"], read.json()["ended_at"] is not None) == ("recovered", True)
        async with sessions() as session:
            activation = await session.get(Activation, uuid.UUID(lost["activation_id"]))
            assert activation is not None
            assert activation.status == "recovered"
            notified = await session.scalars(select(Event.name).where(Event.name == "activation_recovered.txt.j2"))
            assert list(notified.all()) == ["activation_recovered.txt.j2"]
        history = await handle.fetch_history()
        await replayer().replay_workflow(history)
        if RECORD and database_url.startswith("sqlite"):
            save_history(history, "recovery_lock_period")


APPROVAL = "    - {kind: approval, name: vendor check, approvers: vendor_admins, timeout: P3D}\n    - kind: recover\n"


async def test_an_approval_approves_or_rejects(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
    tmp_path: Path,
    database_url: str,
) -> None:
    w = rights_world
    approving = with_recovery_steps(settings, tmp_path, APPROVAL)
    async with recovery_stack(time_skipping_env, approving, sessions) as stack:
        approved_one = await stack.activate(w.codes["own"], "lost-device-1")
        rejected_one = await stack.activate(w.codes["subtree"], "lost-device-2")
        for activated in (approved_one, rejected_one):
            started = await stack.recover(w, "customer_admin", activated["activation_id"])
            assert started.status_code == 202, started.text
            STARTED.append(started.json()["workflow_id"])
            handle = stack.handle(activated["activation_id"])
            await until(lambda handle=handle: waits_for_approval(handle))  # type: ignore[misc]
        base = f"{ACTIVATIONS}/{approved_one['activation_id']}/recover"
        own = await stack.api.post(f"{base}/approve", headers=bearer(w.keys["customer_admin"]))
        assert (own.status_code, own.json()["code"]) == (403, "self-approval-not-allowed")
        not_approver = await stack.api.post(f"{base}/approve", headers=bearer(w.keys["reseller_admin"]))
        assert (not_approver.status_code, not_approver.json()["code"]) == (403, "not-an-approver")
        foreign = await stack.api.post(f"{base}/approve", headers=bearer(w.keys["foreign_admin"]))
        assert foreign.status_code == 404
        approved = await stack.api.post(
            f"{base}/approve", json={"comment": "lost on a train"}, headers=bearer(w.keys["vendor_admin"])
        )
        assert approved.status_code == 200, approved.text
        assert (await stack.handle(approved_one["activation_id"]).result()).status == "done"
        assert await stack.license_status(approved_one) == "revoked"

        base = f"{ACTIVATIONS}/{rejected_one['activation_id']}/recover"
        rejected = await stack.api.post(f"{base}/reject", headers=bearer(w.keys["vendor_admin"]))
        assert rejected.status_code == 200, rejected.text
        state = await stack.handle(rejected_one["activation_id"]).result()
        assert state.status == "rejected"
        assert await stack.license_status(rejected_one) == "active"  # untouched
        late = await stack.api.post(f"{base}/approve", headers=bearer(w.keys["vendor_admin"]))
        assert (late.status_code, late.json()["code"]) == (409, "not-waiting")
        ended = await stack.recover(w, "customer_admin", rejected_one["activation_id"])
        assert (ended.status_code, ended.json()["code"]) == (409, "recovery-ended")
        read = await stack.api.get(
            f"{ACTIVATIONS}/{rejected_one['activation_id']}/recovery", headers=bearer(w.keys["customer_admin"])
        )
        assert read.json()["status"] == "rejected"
        for activated, stem in ((approved_one, "recovery_approved"), (rejected_one, "recovery_rejected")):
            history = await stack.handle(activated["activation_id"]).fetch_history()
            await replayer().replay_workflow(history)
            if RECORD and database_url.startswith("sqlite"):
                save_history(history, stem)


async def test_concurrent_requests_get_one_recovery_and_one_run(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    rights_world: RightsWorld,
) -> None:
    w = rights_world
    async with recovery_stack(time_skipping_env, settings, sessions) as stack:
        lost = await stack.activate(w.codes["own"], "lost-device-9")
        who = ["customer_admin", "reseller_admin", "vendor_admin"] * 3
        answers = await asyncio.gather(*(stack.recover(w, name, lost["activation_id"]) for name in who))
        assert {answer.status_code for answer in answers} == {202}, [a.text for a in answers]
        assert len({answer.json()["id"] for answer in answers}) == 1
        STARTED.append(answers[0].json()["workflow_id"])
        async with sessions() as session:
            count = await session.scalar(
                select(func.count()).where(ActivationRecovery.activation_id == uuid.UUID(lost["activation_id"]))
            )
            assert count == 1
        # Every later request found the first run (USE_EXISTING): it still waits out its lock period.
        assert (await stack.handle(lost["activation_id"]).describe()).status == WorkflowExecutionStatus.RUNNING
