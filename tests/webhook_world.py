"""A small world for webhook tests: the vendor with an admin, a customer below it, endpoints and events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.apikeys import authenticate
from tessera.bootstrap import ensure_vendor
from tessera.catalog.schema import VendorSpec
from tessera.models import EventKind, Organization
from tessera.notifications import write_event
from tessera.principal import Principal
from tessera.webhooks import endpoints
from tessera.webhooks.models import WebhookEndpoint
from tests.conftest import TEST_SECRET

LOOPBACK_RULES = endpoints.UrlRules(allow_http_loopback=True)


@dataclass
class WebhookWorld:
    vendor_id: uuid.UUID
    customer_id: uuid.UUID
    admin: Principal
    admin_email: str


async def build_world(sessions: async_sessionmaker[AsyncSession]) -> WebhookWorld:
    async with sessions() as session:
        booted = await ensure_vendor(session, TEST_SECRET, VendorSpec(name="Test Vendor"))
        assert booted.new_token is not None
        customer = Organization(kind="customer", parent_id=booted.vendor.id, name="Contoso", custom_fields={})
        session.add(customer)
        await session.flush()
        admin = await authenticate(session, TEST_SECRET, booted.new_token)
        world = WebhookWorld(booted.vendor.id, customer.id, admin, booted.admin.email)
        await session.commit()
    return world


async def add_endpoint(
    sessions: async_sessionmaker[AsyncSession],
    world: WebhookWorld,
    url: str,
    *,
    organization_id: uuid.UUID | None = None,
    event_types: tuple[str, ...] = ("order.fulfilled",),
    raw_url: bool = False,
) -> tuple[uuid.UUID, str]:
    """An endpoint and its secret; `raw_url` stores the URL as given (as if a name now resolved elsewhere)."""
    async with sessions() as session:
        endpoint, secret = await endpoints.create_endpoint(
            session,
            world.admin,
            TEST_SECRET,
            LOOPBACK_RULES,
            organization_id=organization_id or world.customer_id,
            url="https://hooks.example.com/placeholder" if raw_url else url,
            event_types=event_types,
        )
        if raw_url:
            await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id).values(url=url))
        await session.commit()
    return endpoint.id, secret


async def add_event(
    sessions: async_sessionmaker[AsyncSession],
    organization_id: uuid.UUID,
    name: str = "order.fulfilled",
    kind: EventKind = EventKind.webhook,
) -> uuid.UUID:
    order_id = str(uuid.uuid4())
    async with sessions() as session:
        event_id = await write_event(
            session,
            key=f"test:{uuid.uuid4()}",
            kind=kind,
            name=name,
            organization_id=organization_id,
            order_id=None,
            payload={"order_id": order_id, "status": "fulfilled", "external_ref": None, "license_ids": []},
        )
        await session.commit()
        return event_id
