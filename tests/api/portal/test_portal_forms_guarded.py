"""Every form of the portal is guarded, and opening a page changes nothing.

Each POST page takes the CSRF-checked form and refuses a post without this browser's token (none, forged, another
browser's) with 403, changing nothing; a signed-out session's cookie, copied before sign-out, is refused everywhere;
and no GET page writes anything, whoever opens it. The routes are read from the application, so a page added later
is covered without touching this file.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.portal.deps import checked_form
from tessera.models import Base
from tessera.settings import Settings
from tests.api.people import give_password
from tests.api.portal.browser_forms import browser, csrf_of, sign_in_portal
from tests.api.portal.portal_routes import Served, portal_routes
from tests.conftest import RightsWorld

Sessions = async_sessionmaker[AsyncSession]
VENDOR_ADMIN = "admin@vendor.example"
OTHER = "customer.admin@example.com"
PARAMETER = re.compile(r"{([^}:]+)(?::[^}]*)?}")
# Bookkeeping that a refused request may still touch: when a session was last seen.
IGNORED_COLUMNS = {("api_key", "last_used_at"), ("api_key", "updated_at")}


def portal_post_routes(app: FastAPI) -> list[Served]:
    return [served for served in portal_routes(app) if "POST" in served.methods]


def takes_checked_form(dependant: Dependant) -> bool:
    return any(dep.call is checked_form or takes_checked_form(dep) for dep in dependant.dependencies)


def test_every_portal_post_route_takes_the_checked_form() -> None:
    routes = portal_post_routes(create_app(Settings(database_url="sqlite:///unused.db")))
    assert {"/signin", "/signout"} <= {route.path for route in routes}
    unguarded = [served.path for served in routes if not takes_checked_form(served.route.dependant)]
    assert not unguarded, f"portal POST routes without the CSRF-checked Form: {unguarded}"


def _value_for(name: str, before: str, world: RightsWorld) -> str:
    """A real object of the world for a path parameter, so that a route missing its check would act on it."""
    hint = f"{name} {before}".lower()
    choices: list[tuple[str, Any]] = [
        ("ticket", world.tickets["own"]),
        ("order", world.orders["own"]),
        ("approval", world.orders["own"]),
        ("license", world.licenses["own"]),
        ("grant", world.group_id),
        ("member", world.users["customer_member"]),
        ("user", world.users["customer_member"]),
        ("key", world.service_keys["C1"]),
        ("organization", world.orgs["C1"]),
        ("group", world.orgs["C1"]),
    ]
    for fragment, value in choices:
        if fragment in hint:
            return str(value)
    if "token" in hint:
        return "a" * 43
    return str(uuid.uuid4())


def concrete_path(template: str, world: RightsWorld) -> str:
    path = template
    for match in PARAMETER.finditer(template):
        before = template[: match.start()].rstrip("/").rsplit("/", 1)[-1]
        path = path.replace(match.group(0), _value_for(match.group(1), before, world), 1)
    return path


async def snapshot(sessions: Sessions) -> dict[str, list[str]]:
    """Every row of every table, as text, sorted: equal snapshots mean nothing was written."""
    rows: dict[str, list[str]] = {}
    async with sessions() as session:
        for table in Base.metadata.sorted_tables:
            columns = [column for column in table.columns if (table.name, column.name) not in IGNORED_COLUMNS]
            result = await session.execute(select(*columns))
            rows[table.name] = sorted(repr(tuple(row)) for row in result.all())
    return rows


def changed_tables(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    return [name for name in before if before[name] != after.get(name)]


def refusals(token_elsewhere: str, my_other_session: str) -> Iterator[tuple[str, dict[str, str]]]:
    yield "no token", {"name": "x", "email": VENDOR_ADMIN, "password": "x" * 20}
    yield "forged token", {"csrf_token": "A" * 43, "name": "x"}
    yield "another browser's token", {"csrf_token": token_elsewhere, "name": "x"}
    yield "my other session's token", {"csrf_token": my_other_session, "name": "x"}


async def test_every_portal_form_refuses_a_post_without_this_browsers_token(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    app = api._transport.app  # type: ignore[attr-defined]
    routes = portal_post_routes(app)
    await give_password(sessions, VENDOR_ADMIN)
    await give_password(sessions, OTHER)
    await sign_in_portal(api, VENDOR_ADMIN)
    async with browser(api) as other, browser(api) as laptop:
        await sign_in_portal(other, OTHER)
        theirs = csrf_of((await other.get("/account")).text)
        # The same person signed in elsewhere: a token is bound to one session, not to the account.
        await sign_in_portal(laptop, VENDOR_ADMIN)
        mine_elsewhere = csrf_of((await laptop.get("/account")).text)
    before = await snapshot(sessions)
    for route in routes:
        path = concrete_path(route.path, rights_world)
        for why, data in refusals(theirs, mine_elsewhere):
            response = await api.post(path, data=data)
            assert response.status_code == 403, (route.path, why, response.status_code, response.text[:500])
            assert "form has expired" in response.text, (route.path, why)
        # A body that is not a form at all (a script posting JSON) is refused the same way.
        response = await api.post(path, json={"name": "x"})
        assert response.status_code == 403, (route.path, "json", response.status_code)
    assert changed_tables(before, await snapshot(sessions)) == []
    # The vendor admin is still signed in: even the refused sign-out did nothing.
    assert (await api.get("/account")).status_code == 200


async def test_a_copy_of_the_cookie_is_refused_everywhere_after_sign_out(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    app = api._transport.app  # type: ignore[attr-defined]
    await give_password(sessions, VENDOR_ADMIN)
    await sign_in_portal(api, VENDOR_ADMIN)
    cookie = api.cookies["tessera_session"]
    token = csrf_of((await api.get("/account")).text)
    signed_out = await api.post("/signout", data={"csrf_token": token})
    assert signed_out.status_code == 303
    before = await snapshot(sessions)
    async with browser(api) as thief:
        thief.cookies.set("tessera_session", cookie)
        account = await thief.get("/account")
        assert account.status_code == 303
        assert account.headers["location"].startswith("/signin")
        for route in portal_post_routes(app):
            path = concrete_path(route.path, rights_world)
            response = await thief.post(path, data={"csrf_token": token, "name": "x"})
            # Refused as a forged form, or sent to sign in: never done.
            assert response.status_code in (303, 403), (route.path, response.status_code)
            if response.status_code == 303:
                assert response.headers["location"].startswith("/signin"), route.path
    assert changed_tables(before, await snapshot(sessions)) == []


async def test_opening_any_page_changes_nothing(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    """A GET writes nothing, whoever asks: a link or an image on another site can make a browser open any page."""
    app = api._transport.app  # type: ignore[attr-defined]
    pages = [served.path for served in portal_routes(app) if "GET" in served.methods]
    await give_password(sessions, VENDOR_ADMIN)
    await give_password(sessions, "customer.member@example.com")
    async with browser(api) as member:
        await sign_in_portal(api, VENDOR_ADMIN)
        await sign_in_portal(member, "customer.member@example.com")
        # Each session's first use is recorded once; after that only real changes would show.
        for client in (api, member):
            await client.get("/account")
        before = await snapshot(sessions)
        opened = 0
        for client in (api, member):
            for template in pages:
                response = await client.get(concrete_path(template, rights_world))
                assert response.status_code < 500, (template, response.status_code)
                opened += response.status_code == 200
        assert changed_tables(before, await snapshot(sessions)) == []
    assert opened > len(pages), "most pages should open for the vendor admin: the check would prove little"
