"""A real webhook receiver on loopback: a small ASGI app served by uvicorn inside the test's event loop.

It answers from a script (status, headers, delay, body size per request; then a default), records every
request it got, and verifies each with `standardwebhooks` under the secrets it is given.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    body_bytes: int = 2
    stream_chunks: int = 1
    """The body is sent in this many chunks of `body_bytes` each (a huge answer without holding it in memory)."""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    verified_with: list[str] = field(default_factory=list)
    status: int = 0
    """What the receiver answered (set just before it answers)."""


@dataclass
class Receiver:
    script: list[Answer] = field(default_factory=list)
    default: Answer = field(default_factory=Answer)
    secrets: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def verify(self, item: Received) -> list[str]:
        """The secrets (of `secrets`) under which the request's signature verifies."""
        good = []
        for secret in self.secrets:
            try:
                Webhook(secret).verify(item.body, item.headers)
            except WebhookVerificationError:
                continue
            good.append(secret)
        return good

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
        item = Received(path=scope["path"], headers=headers, body=body, at=time.monotonic())
        item.verified_with = self.verify(item)
        self.received.append(item)
        self.arrived.set()
        answer = self.script.pop(0) if self.script else self.default
        item.status = answer.status
        if answer.delay:
            await asyncio.sleep(answer.delay)
        raw_headers = [(k.lower().encode(), v.encode()) for k, v in answer.headers]
        await send({"type": "http.response.start", "status": answer.status, "headers": raw_headers})
        for index in range(answer.stream_chunks):
            more = index < answer.stream_chunks - 1
            try:
                await send({"type": "http.response.body", "body": b"x" * answer.body_bytes, "more_body": more})
            except OSError:  # the client hung up (it reads only so much): that is the point
                return


@asynccontextmanager
async def running_receiver(receiver: Receiver | None = None) -> AsyncIterator[Receiver]:
    """Serve a receiver on 127.0.0.1 (a free port) until the block ends."""
    receiver = receiver or Receiver()
    config = uvicorn.Config(
        receiver.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", interface="asgi3"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "the receiver did not start"
    receiver.port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 10)
