"""The rights world with a product that has typed fields and modules, and people who sign in to the portal."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable

from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import Grant, Order, Product, User
from tests.api.people import give_password
from tests.api.portal.browser_forms import csrf_of, sign_in_portal
from tests.conftest import RightsWorld

Sessions = async_sessionmaker[AsyncSession]
PRODUCT = "CAD-FIELDS"
FIELDS = [
    {"name": "seats", "label": {"en": "Seats", "de": "Arbeitsplätze"}, "type": "int", "min": 1, "max": 50,
     "required": True, "default": 5},
    {"name": "trial_days", "label": {"en": "Trial days", "de": "Testtage"}, "type": "choice",
     "allowed": [5, 30, 60, 90], "default": 30},
    {"name": "edition", "label": {"en": "Edition", "de": "Ausgabe"}, "type": "string", "max_length": 20},
    {"name": "support", "label": {"en": "Support", "de": "Wartung"}, "type": "bool", "default": True},
    {"name": "starts", "label": {"en": "Starts on", "de": "Beginnt am"}, "type": "date"},
]  # fmt: skip
MODULES = [
    {"code": "RENDER", "name": {"en": "Rendering", "de": "Darstellung"}, "default": True},
    {"code": "CLOUD", "name": {"en": "Cloud sync", "de": "Cloud-Abgleich"}, "default": False},
]
ORDER_LINK = re.compile(r"/orders/([0-9a-f-]{36})$")


def email_of(name: str) -> str:
    return f"{name.replace('_', '.')}@example.com"


async def add_product(sessions: Sessions, world: RightsWorld) -> None:
    async with sessions() as session:
        session.add(
            Product(
                code=PRODUCT,
                group_id=world.group_id,
                name={"en": "ProCAD with options", "de": "ProCAD mit Optionen"},
                kind="perpetual",
                container_kinds=["software", "cloud"],
                fields=FIELDS,
                modules=MODULES,
            )
        )
        await session.commit()


async def set_quota(sessions: Sessions, world: RightsWorld, org: str, quota: int | None) -> None:
    async with sessions() as session:
        grant = await session.get(Grant, world.grants[org])
        assert grant is not None
        grant.quota = quota
        await session.commit()


async def portal_user(client: AsyncClient, sessions: Sessions, world: RightsWorld, name: str) -> None:
    """Give `name` of the world a password and sign in with `client`."""
    async with sessions() as session:
        user = await session.get(User, world.users[name])
        assert user is not None
        email = user.email
    await give_password(sessions, email)
    await sign_in_portal(client, email)


async def set_locale(sessions: Sessions, world: RightsWorld, name: str, locale: str) -> None:
    async with sessions() as session:
        user = await session.get(User, world.users[name])
        assert user is not None
        user.locale = locale
        await session.commit()


def step_url(world: RightsWorld, org: str = "C1", group: str = "CAD", product: str = PRODUCT) -> str:
    return f"/licenses/new?organization={world.orgs[org]}&group={group}&product={product}"


def details_form(world: RightsWorld, org: str = "C1", **values: str | list[str]) -> dict[str, str | list[str]]:
    """What step 4's form sends with its defaults, changed by `values` (`field.x` names, `module`)."""
    form: dict[str, str | list[str]] = {
        "organization": str(world.orgs[org]),
        "group": "CAD",
        "product": PRODUCT,
        "step": "details",
        "field.seats": "5",
        "field.trial_days": "30",
        "field.edition": "",
        "field.support": "on",
        "field.starts": "",
        "module": ["RENDER"],
    }
    form.update(values)
    return form


HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def hidden_fields(html: str) -> list[tuple[str, str]]:
    """The hidden inputs of step 5's form, in order (repeated names such as `module` kept)."""
    start = html.index('value="create"')
    form = html[html.rindex("<form", 0, start) : html.index("</form>", start)]
    return [(name, value.replace("&#34;", '"').replace("&quot;", '"')) for name, value in HIDDEN.findall(form)]


async def create_through_wizard(
    client: AsyncClient, world: RightsWorld, *, quantity: str = "1", allocation: str = "requester", **values: str
) -> Response:
    """Steps 4 and 5 with the given values; returns the answer to "Create license"."""
    page = await client.get(step_url(world))
    assert page.status_code == 200, page.text
    form_data = {"csrf_token": csrf_of(page.text), **details_form(world, **values)}
    finish = await client.post("/licenses/new", data=form_data)
    assert finish.status_code == 200, finish.text
    form = [*hidden_fields(finish.text), ("quantity", quantity), ("allocation", allocation)]
    form.append(("visibility", "all_members"))
    return await client.post("/licenses/new", data=as_pairs(form))


def as_pairs(form: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    data: dict[str, str | list[str]] = {}
    for name, value in form:
        if name in data:
            existing = data[name]
            data[name] = [*(existing if isinstance(existing, list) else [existing]), value]
        else:
            data[name] = value
    return data


def order_id_of(response: Response) -> uuid.UUID:
    assert response.status_code == 303, response.text
    match = ORDER_LINK.search(response.headers["location"])
    assert match is not None, response.headers["location"]
    return uuid.UUID(match.group(1))


async def orders_of(sessions: Sessions, world: RightsWorld, org: str = "C1") -> list[Order]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Order).where(Order.organization_id == world.orgs[org], Order.idempotency_key.is_not(None))
        )
        return list(rows.all())


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def status_of(sessions: Sessions, order_id: uuid.UUID) -> str:
    async with sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return order.status
