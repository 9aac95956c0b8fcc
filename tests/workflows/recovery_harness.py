"""An API and a worker on the time-skipping server, for lost-device recoveries activated through the real API."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from httpx import ASGITransport, AsyncClient
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tessera.settings import REPO_ROOT, Settings
from tests.conftest import RightsWorld, bearer
from tests.workflows.subscription_harness import worker_on
from workflows.subscription_models import ProcessState

V1 = "/api/v1"
ACTIVATIONS = f"{V1}/activations"


def with_recovery_steps(settings: Settings, tmp_path: Path, steps: str) -> Settings:
    """Settings whose workflows.yaml has these recovery steps (YAML list items, indented four spaces)."""
    config = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config)
    workflows = config / "workflows.yaml"
    text = workflows.read_text()
    head, marker, _tail = text.partition("\nrecovery:")
    assert marker, "workflows.yaml lists recovery"
    workflows.write_text(f"{head}\nrecovery:\n  steps:\n{steps}")
    return settings.model_copy(update={"config_dir": config})


@dataclass
class Stack:
    api: AsyncClient
    env: WorkflowEnvironment
    settings: Settings

    async def activate(self, code: str, fingerprint: str) -> dict[str, str]:
        answer = await self.api.post(
            ACTIVATIONS, json={"code": code, "container": {"kind": "software", "fingerprint": fingerprint}}
        )
        assert answer.status_code == 201, answer.text
        activated: dict[str, str] = answer.json()
        return activated

    async def recover(self, world: RightsWorld, who: str, activation_id: str) -> Any:
        return await self.api.post(f"{ACTIVATIONS}/{activation_id}/recover", headers=bearer(world.keys[who]))

    async def license_status(self, activated: dict[str, str]) -> str:
        """What the activation's refresh says of its license now."""
        refreshed = await self.api.post(
            f"{ACTIVATIONS}/{activated['activation_id']}/refresh", json={"secret": activated["secret"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        keys = KeySet.import_key_set((await self.api.get("/.well-known/jwks.json")).json())
        status: str = jwt.decode(refreshed.json()["certificate"], keys, algorithms=["EdDSA"]).claims["license"][
            "status"
        ]
        return status

    def handle(self, activation_id: str) -> WorkflowHandle[Any, ProcessState]:
        return self.env.client.get_workflow_handle(f"recovery-{activation_id}", result_type=ProcessState)


@asynccontextmanager
async def recovery_stack(
    env: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Stack]:
    """The API (its Temporal client on the time-skipping server) and a worker on a queue of this test's own."""
    target = env.client.service_client.config.target_host
    queued = settings.model_copy(update={"temporal_address": target, "task_queue": f"recovery-{uuid.uuid4().hex[:12]}"})
    app = create_app(queued)
    async with (
        worker_on(env.client, queued, sessions, queued.task_queue) as worker_settings,
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://t.test", timeout=60) as client,
    ):
        yield Stack(client, env, worker_settings)


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def waits_for_approval(handle: WorkflowHandle[Any, ProcessState]) -> bool:
    try:
        state: ProcessState = await handle.query("state", result_type=ProcessState)
    except (RPCError, WorkflowQueryFailedError):  # its first workflow task has not run yet
        return False
    return state.waiting_for_approval
