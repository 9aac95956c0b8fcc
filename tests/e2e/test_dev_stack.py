"""`tessera dev` end to end: the real dev server, worker, API and SQLite, started and stopped as a user would."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tessera.devstack import find_binary, port_answers
from tessera.search_attributes import SEARCH_ATTRIBUTES
from tessera.settings import REPO_ROOT
from tests.e2e.stack import DevStack, alive, descendants
from tests.webhook_receiver import running_receiver
from workflows.system_check import SystemCheckInput, SystemCheckWorkflow

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DevStack]:
    stack = DevStack(workdir=tmp_path)
    yield stack
    stack.kill()


def _stop_and_check_nothing_survives(stack: DevStack) -> None:
    assert stack.process is not None
    children = descendants(stack.process.pid)
    assert len(children) >= 3, f"expected Temporal, worker and API below tessera dev, got {children}"
    assert stack.interrupt() == 0, stack.text()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if alive(pid)], "child processes survived Ctrl-C"


async def test_dev_starts_everything_and_stops_cleanly(stack: DevStack) -> None:
    stack.start()
    await asyncio.to_thread(stack.wait_healthy)

    key = stack.admin_key_printed()
    assert key is not None, stack.text()
    key_file = stack.var_dir / "admin-key"
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert f"http://127.0.0.1:{stack.api_port}/docs" in stack.text()
    assert f"http://127.0.0.1:{stack.ui_port}" in stack.text()

    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as api:
        products = await api.get("/api/v1/products", headers={"Authorization": f"Bearer {key}"})
        assert products.status_code == 200
        assert {"PRO-CAD", "PRO-CAD-TRIAL", "SIM-CLOUD-Y"} <= {p["code"] for p in products.json()["items"]}
        assert (await api.get("/api/v1/products")).status_code == 401
        ui = await api.get(f"http://127.0.0.1:{stack.ui_port}/")
        assert ui.status_code == 200
        # The portal is served too, and the printed link lets the admin choose a portal password.
        assert f"http://127.0.0.1:{stack.api_port}/" in stack.text()
        link = stack.admin_password_link_printed()
        assert link is not None, stack.text()
        assert (await api.get(link)).status_code == 200
        assert (await api.get("/signin")).status_code == 200

    client = await Client.connect(f"127.0.0.1:{stack.temporal_port}", data_converter=pydantic_data_converter)
    registered = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace="default"))
    assert set(SEARCH_ATTRIBUTES) <= set(registered.custom_attributes)
    # A workflow through the worker against the database proves the whole chain, not just open ports.
    result = await client.execute_workflow(
        SystemCheckWorkflow.run, SystemCheckInput(requested_by="e2e"), id="e2e-system-check", task_queue="tessera"
    )
    assert result.product_count == 4  # the products of config/catalog.yaml
    assert result.organization_count == 1
    # The README's queries for operators run as written with the bundled CLI (an unknown attribute is an error).
    temporal = [find_binary("temporal"), "workflow", "list", "--address", f"127.0.0.1:{stack.temporal_port}"]
    for query in (
        "WorkflowType = 'LicenseOrderWorkflow' AND TesseraStatus = 'pending_approval'",
        f"TesseraCustomer = '{uuid.uuid4()}'",
        "WorkflowId = 'e2e-system-check'",
    ):
        listed = await asyncio.to_thread(
            subprocess.run, [*temporal, "--query", query], capture_output=True, text=True, timeout=30
        )
        assert listed.returncode == 0, (query, listed.stderr)
    assert "e2e-system-check" in listed.stdout

    await _webhook_and_invitation_through_the_stack(stack, key)
    await asyncio.to_thread(_stop_and_check_nothing_survives, stack)

    # Running it again keeps the data: same key works, no new key is printed, the workflow is still there.
    stack.start()
    await asyncio.to_thread(stack.wait_healthy)
    assert stack.admin_key_printed() is None
    assert "catalog unchanged" in stack.text()
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as api:
        again = await api.get("/api/v1/products", headers={"Authorization": f"Bearer {key}"})
        assert again.status_code == 200
    client = await Client.connect(f"127.0.0.1:{stack.temporal_port}", data_converter=pydantic_data_converter)
    assert (await client.get_workflow_handle("e2e-system-check").describe()).status is not None
    await asyncio.to_thread(_stop_and_check_nothing_survives, stack)


async def _webhook_and_invitation_through_the_stack(stack: DevStack, key: str) -> None:
    """A receiver registered through the API gets a verified order.fulfilled; an invitation shows on /dev/outbox."""
    headers = {"Authorization": f"Bearer {key}"}
    async with running_receiver() as receiver, httpx.AsyncClient(base_url=stack.api_url, timeout=10) as api:
        me = (await api.get("/api/v1/users/me", headers=headers)).json()
        vendor = me["memberships"][0]["organization_id"]
        created = await api.post(
            "/api/v1/organizations", headers=headers, json={"kind": "customer", "parent_id": vendor, "name": "Contoso"}
        )
        assert created.status_code == 201, created.text
        contoso = created.json()["id"]
        registered = await api.post(
            "/api/v1/webhook-endpoints",
            headers=headers,
            json={"organization_id": contoso, "url": receiver.url, "event_types": ["order.fulfilled", "order.failed"]},
        )
        assert registered.status_code == 201, registered.text
        endpoint = registered.json()
        receiver.secrets = [endpoint["secret"]]
        ordered = await api.post(
            "/api/v1/orders",
            headers={**headers, "Idempotency-Key": "e2e-webhook-order"},
            json={
                "organization_id": contoso,
                "product": "PRO-CAD",
                "quantity": 2,
                "allocation": "organization",
                "visibility": "all_members",
                "external_ref": "SO-E2E/1",
            },
        )
        assert ordered.status_code == 202, ordered.text
        order_id = ordered.json()["id"]
        await asyncio.wait_for(receiver.arrived.wait(), 60)
        deliveries: list[dict[str, object]] = []
        for _ in range(100):  # the worker records the attempt just after the receiver answered
            listed = await api.get(f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=headers)
            deliveries = listed.json()["items"]
            if deliveries and deliveries[0]["status"] == "delivered":
                break
            await asyncio.sleep(0.1)
        invited = await api.post(
            "/api/v1/users",
            headers=headers,
            json={"email": "bob@contoso.example", "name": "Bob", "organization_id": contoso, "role": "admin"},
        )
        assert invited.status_code == 202, invited.text
        outbox = await api.get("/dev/outbox")
        assert outbox.status_code == 200
        match = re.search(r'<a href="(http://[^"]+/invitations/([^"]+))"', outbox.text)
        assert match is not None, outbox.text
        redeemed = await api.post(
            "/api/v1/invitations/redeem",
            json={
                "token": html.unescape(match.group(2)),
                "email": "bob@contoso.example",
                "password": "bob-at-e2e-2026!",
            },
        )
        assert redeemed.status_code == 200, redeemed.text
    [request] = receiver.received
    assert request.verified_with == [endpoint["secret"]], "the standardwebhooks signature must verify"
    body = json.loads(request.body)
    assert (body["type"], body["data"]["order_id"], body["data"]["status"]) == (
        "order.fulfilled",
        order_id,
        "fulfilled",
    )
    assert len(body["data"]["license_ids"]) == 2
    assert request.headers["webhook-id"] == body["id"]
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in deliveries] == [("delivered", 1, 200)]
    assert "bob@contoso.example" in outbox.text


def test_port_in_use_is_named_with_its_setting(tmp_path: Path) -> None:
    stack = DevStack(workdir=tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", stack.api_port))
        squatter.listen()
        finished = subprocess.run(
            [sys.executable, "-m", "tessera.cli", "dev"],
            cwd=tmp_path,
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert finished.returncode != 0
    assert f"port {stack.api_port}" in finished.stderr
    assert "TESSERA_API_PORT" in finished.stderr
    assert not (tmp_path / "var" / "temporal.db").exists(), "nothing may start when a port is taken"
    assert os.listdir(tmp_path) in ([], ["var"])


def _broken_config(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config)
    text = (config / "workflows.yaml").read_text()
    (config / "workflows.yaml").write_text(text.replace("kind: create_license", "kind: create_licence", 1))
    return config


def test_worker_refuses_to_start_on_an_invalid_workflows_file(tmp_path: Path) -> None:
    config = _broken_config(tmp_path)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TESSERA_")}
    env.update(TESSERA_CONFIG_DIR=str(config), TESSERA_TEMPORAL_ADDRESS="127.0.0.1:1", TESSERA_VAR_DIR=str(tmp_path))
    finished = subprocess.run(
        [sys.executable, "-m", "tessera.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2
    line = next(
        n for n, text in enumerate((config / "workflows.yaml").read_text().splitlines(), 1) if "create_licence" in text
    )
    assert f"workflows.yaml:{line}:" in finished.stderr
    assert "create_licence" in finished.stderr


def test_dev_refuses_to_start_on_an_invalid_workflows_file(tmp_path: Path) -> None:
    config = _broken_config(tmp_path)
    stack = DevStack(workdir=tmp_path)
    env = {**stack.env(), "TESSERA_CONFIG_DIR": str(config)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tessera.cli", "dev"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode != 0
    assert "create_licence" in stderr
    # The Temporal dev server had started before the check failed; it must have been stopped with the rest.
    assert not port_answers(stack.temporal_port)
