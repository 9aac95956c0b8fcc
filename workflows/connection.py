"""The one way every process (API, worker, CLI, tests) reaches Temporal: same address, same data converter."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tessera.settings import Settings


async def connect_temporal(settings: Settings, *, lazy: bool = False) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        lazy=lazy,
    )


async def connect_temporal_patiently(settings: Settings, *, timeout_seconds: float = 60.0) -> Client:
    """Connect, retrying while the server starts up (the dev server accepts TCP before it serves gRPC)."""
    deadline = asyncio.get_running_loop().time() + timeout_seconds
    while True:
        try:
            return await connect_temporal(settings)
        except RuntimeError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
