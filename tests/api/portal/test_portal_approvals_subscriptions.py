"""Cancellations and revocations waiting at an approval step show in the approvals inbox of their approvers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tessera.models import Subscription
from tessera.settings import REPO_ROOT, Settings
from tests.api.people import client_for
from tests.api.portal.browser_forms import browser, csrf_of
from tests.api.portal.orders_world import Sessions, portal_user, until
from tests.api.subscriptions import SUBSCRIPTIONS, add_subscription_products, give_permissions, make_subscription
from tests.conftest import RightsWorld, bearer
from workflows.subscription_models import ProcessState
from workflows.subscription_ops import start_subscription_workflow
from workflows.worker import build_worker

APPROVAL = """    - kind: approval
      name: vendor approval
      approvers: vendor_admins
      timeout: P5D
      on_timeout: reject
"""


@pytest.fixture
def approving_settings(orders_temporal_settings: Settings, tmp_path: Path) -> Settings:
    """workflows.yaml with a vendor approval before every cancellation and revocation."""
    config = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config)
    workflows = config / "workflows.yaml"
    text = workflows.read_text()
    for process in ("cancellation", "revocation"):
        marker = f"\n{process}:\n  steps:\n"
        assert marker in text
        text = text.replace(marker, marker + APPROVAL, 1)
    workflows.write_text(text)
    return orders_temporal_settings.model_copy(update={"config_dir": config})


async def _waits(env: WorkflowEnvironment, workflow_id: str) -> bool:
    try:
        state: ProcessState = await env.client.get_workflow_handle(workflow_id).query("state", result_type=ProcessState)
    except (RPCError, WorkflowQueryFailedError):
        return False
    return bool(state.waiting_for_approval)


async def _status(sessions: Sessions, made_id: object) -> str:
    async with sessions() as session:
        subscription = await session.get(Subscription, made_id)
        assert subscription is not None
        return subscription.status


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_vendor_approves_a_cancellation_and_rejects_a_revocation_in_the_inbox(
    approving_settings: Settings, rights_world: RightsWorld, sessions: Sessions, dev_env: WorkflowEnvironment
) -> None:
    w = rights_world
    await add_subscription_products(sessions, w)
    await give_permissions(sessions, w, "C1", ["allocate", "cancel", "create", "revoke"])
    made = await make_subscription(sessions, w, grant="C1", requester="customer_admin")
    path = f"{SUBSCRIPTIONS}/{made.subscription_id}"
    card = f'data-id="{made.subscription_id}"'
    admin = bearer(w.keys["customer_admin"])
    async with client_for(approving_settings) as portal, build_worker(dev_env.client, approving_settings, sessions):
        async with sessions() as session:
            subscription = await session.get(Subscription, made.subscription_id)
            assert subscription is not None
            await start_subscription_workflow(dev_env.client, approving_settings.task_queue, session, subscription)
        cancelled = await portal.post(f"{path}/cancel", headers=admin)
        assert cancelled.status_code == 202, cancelled.text
        workflow_id = cancelled.json()["cancellation"]["workflow_id"]

        async def cancellation_waits() -> bool:
            return await _waits(dev_env, workflow_id)

        await until(cancellation_waits)
        await portal_user(portal, sessions, w, "customer_admin")
        assert card not in (await portal.get("/approvals")).text  # the requester, and no vendor admin
        async with browser(portal) as vendor:
            await portal_user(vendor, sessions, w, "vendor_admin")
            inbox = await vendor.get("/approvals")
            assert card in inbox.text
            assert "Cancellation: 2 \u00d7 SUB-CAD" in inbox.text
            assert "vendor approval" in inbox.text
            form = {
                "csrf_token": csrf_of(inbox.text),
                "kind": "cancellation",
                "subscription": str(made.subscription_id),
                "decision": "approve",
                "comment": "ok",
            }
            assert (await vendor.post("/approvals", data={**form, "csrf_token": "forged"})).status_code == 403
            approved = await vendor.post("/approvals", data=form)
            assert approved.status_code == 303, approved.text
            assert "Your approval is recorded." in (await vendor.get(approved.headers["location"])).text

            async def non_renewing() -> bool:
                return await _status(sessions, made.subscription_id) == "non_renewing"

            await until(non_renewing)
            late = await vendor.post("/approvals", data={**form, "decision": "reject"})
            assert late.status_code == 409
            assert "decided by someone else" in late.text

            revoking = await portal.post(f"{path}/revoke", headers=admin)
            assert revoking.status_code == 202, revoking.text
            revocation_id = revoking.json()["workflow_id"]

            async def revocation_waits() -> bool:
                return await _waits(dev_env, revocation_id)

            await until(revocation_waits)
            inbox = await vendor.get("/approvals")
            assert "Revocation: 2 \u00d7 SUB-CAD" in inbox.text
            assert card not in (await portal.get("/approvals")).text
            rejected = await vendor.post(
                "/approvals",
                data={**form, "kind": "revocation", "decision": "reject", "csrf_token": csrf_of(inbox.text)},
            )
            assert rejected.status_code == 303, rejected.text
            await dev_env.client.get_workflow_handle(revocation_id).result()
            assert await _status(sessions, made.subscription_id) == "non_renewing"
            assert "Revocation: 2" not in (await vendor.get("/approvals")).text
