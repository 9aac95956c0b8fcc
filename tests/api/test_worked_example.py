"""The README's worked example, run line by line exactly as written there, through the API and a real worker.

The block is shell (curl and jq); this test reads it from README.md and carries out each line: `call KEY METHOD
PATH [BODY]` is a request made with that person's key, `| jq -r .a.b[0]` picks a value, `# 403` is the answer
a refused step must get (every other step must succeed), and the block's helpers `invitation` (the token from
the outbox, read by the vendor administrator) and `fulfilled` (wait for an order) are done the same way here.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tessera.bootstrap import ensure_vendor
from tessera.catalog.loader import load_catalog, read_catalog
from tessera.models import Grant, Ticket
from tessera.settings import REPO_ROOT, Settings
from tests.api.people import LINK
from tests.conftest import TEST_SECRET, bearer
from workflows.worker import build_worker

HEADING = "#### Running the worked example"
ASSIGN = re.compile(r"^([A-Z_]+)=\$\((.*)\)$")
EXPECT = re.compile(r"\s+#\s*(\d{3})\b.*$")
JQ_PART = re.compile(r"\.(\w+)|\[(\d+)\]")


def worked_example() -> list[str]:
    """The lines of the README's block, without its helper definitions, comments and blank lines."""
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split(HEADING, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    lines, in_function = [], False
    for line in block.splitlines():
        stripped = line.strip()
        if re.match(r"^\w+\(\) \{", stripped):
            in_function = True
        elif in_function:
            in_function = stripped != "}"
        elif stripped and not stripped.startswith("#") and not stripped.startswith("API="):
            lines.append(stripped)
    return lines


def jq(value: Any, path: str) -> str:
    for key, index in JQ_PART.findall(path):
        value = value[key] if key else value[int(index)]
    return str(value)


class Shell:
    def __init__(self, api: AsyncClient, alice: str) -> None:
        self.api = api
        self.vars: dict[str, str] = {"ALICE_BOOTSTRAP": alice}
        self.calls = 0

    def expand(self, word: str) -> str:
        return re.sub(r"\$(\w+)", lambda m: self.vars[m.group(1)], word)

    async def call(self, words: list[str], expect: int | None) -> Any:
        key, method, path, *body = [self.expand(word) for word in words]
        headers = {"Idempotency-Key": f"worked-example-{self.calls}"}
        if key != "none":
            headers.update(bearer(key))
        self.calls += 1
        response = await self.api.request(
            method,
            f"/api/v1{path}",
            content=body[0] if body else None,
            headers={**headers, "Content-Type": "application/json"},
        )
        if expect is None:
            assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        else:
            assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    async def invitation(self, email: str) -> str:
        outbox = await self.api.get(
            "/api/v1/events", params={"kind": "notification"}, headers=bearer(self.vars["ALICE"])
        )
        body = next(item["body"] for item in outbox.json()["items"] if item["recipients"] == [email])
        match = LINK.search(body)
        assert match is not None, body
        return match.group(1)

    async def fulfilled(self, key: str, order_id: str) -> None:
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            shown = await self.api.get(f"/api/v1/orders/{self.expand(order_id)}", headers=bearer(self.expand(key)))
            if shown.json()["status"] == "fulfilled":
                return
            assert asyncio.get_running_loop().time() < deadline, shown.text
            await asyncio.sleep(0.2)

    async def run(self, line: str) -> None:
        expected = EXPECT.search(line)
        expect = int(expected.group(1)) if expected else None
        line = EXPECT.sub("", line)
        assigned = ASSIGN.match(line)
        if assigned:
            name, command = assigned.groups()
            if command == "cat var/admin-key":
                self.vars[name] = self.vars["ALICE_BOOTSTRAP"]
            elif command.startswith("invitation "):
                self.vars[name] = await self.invitation(command.split()[1])
            else:
                request, _, filter_ = command.partition(" | jq -r ")
                words = shlex.split(request)
                assert words[0] == "call", line
                self.vars[name] = jq(await self.call(words[1:], expect), shlex.split(filter_)[0])
            return
        words = shlex.split(line)
        if words[0] == "call":
            await self.call(words[1:], expect)
        elif words[0] == "fulfilled":
            await self.fulfilled(words[1], words[2])
        else:
            raise AssertionError(f"the test does not know how to run: {line}")


async def test_the_readme_worked_example_runs_as_written(
    orders_api: AsyncClient,
    orders_temporal_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    dev_env: WorkflowEnvironment,
) -> None:
    settings = orders_temporal_settings
    async with sessions() as session:
        await load_catalog(session, settings.catalog_file)
        vendor = read_catalog(settings.catalog_file).vendor
        assert vendor is not None
        booted = await ensure_vendor(session, TEST_SECRET, vendor)
        await session.commit()
    assert booted.new_token is not None
    lines = worked_example()
    assert len(lines) > 30, "the README's worked example went missing"
    shell = Shell(orders_api, booted.new_token)
    async with build_worker(dev_env.client, settings, sessions):
        for line in lines:
            await shell.run(line)
    # Every person acted with a key of their own.
    people = [shell.vars[name] for name in ("ALICE", "BOB", "CAROL", "DAVE")]
    assert len(set(people)) == 4


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq, as the README says")
async def test_the_readme_block_runs_in_a_real_shell(
    orders_temporal_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    """The same block, verbatim but for the port, in bash with curl and jq against a real HTTP server."""
    settings = orders_temporal_settings
    async with sessions() as session:
        await load_catalog(session, settings.catalog_file)
        vendor = read_catalog(settings.catalog_file).vendor
        assert vendor is not None
        booted = await ensure_vendor(session, TEST_SECRET, vendor)
        await session.commit()
    assert booted.new_token is not None
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "admin-key").write_text(booted.new_token + "\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split(HEADING, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    block = block.replace("http://127.0.0.1:8000/api/v1", f"http://127.0.0.1:{port}/api/v1")
    script = "set -euo pipefail\n" + block + '\necho; echo "DESIGN_LAB=$DESIGN_LAB LAB_TICKET=$LAB_TICKET"\n'
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "the API did not start"
            await asyncio.sleep(0.05)
        async with build_worker(dev_env.client, settings, sessions):
            process = await asyncio.create_subprocess_exec(
                "bash", "-c", script, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            out, err = await asyncio.wait_for(process.communicate(), timeout=180)
    finally:
        server.should_exit = True
        await serving
    assert process.returncode == 0, (out.decode()[-3000:], err.decode()[-3000:])
    last = out.decode().strip().splitlines()[-1]
    ids = dict(part.split("=", 1) for part in last.split())
    assert set(ids) == {"DESIGN_LAB", "LAB_TICKET"}, out.decode()[-3000:]
    async with sessions() as session:
        ticket = await session.get(Ticket, uuid.UUID(ids["LAB_TICKET"]))
        withdrawn = (await session.scalars(select(Grant).where(Grant.withdrawn_at.is_not(None)))).all()
    assert ticket is not None
    assert str(ticket.organization_id) == ids["DESIGN_LAB"]
    # Northwind's grant and the four delegated from it (Contoso, Fabrikam, Tailspin, Design Lab).
    assert len(withdrawn) == 5
