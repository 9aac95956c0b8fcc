"""Helpers for the activation tests: the activation runtime on the test database, products to activate."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.activation.runtime import ActivationRuntime, activation_runtime
from tessera.models import Product
from tessera.settings import Settings
from tests.conftest import TEST_SECRET


def runtime_for(settings: Settings, sessions: async_sessionmaker[AsyncSession], **changes: Any) -> ActivationRuntime:
    return activation_runtime(settings.model_copy(update=changes), sessions, TEST_SECRET)


async def set_product(sessions: async_sessionmaker[AsyncSession], product_id: uuid.UUID, **values: Any) -> None:
    async with sessions() as session:
        await session.execute(update(Product).where(Product.id == product_id).values(**values))
        await session.commit()
