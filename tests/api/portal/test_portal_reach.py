"""No page shows anything the API would hide from the same person.

The authorization matrix's world (tests/api/test_authz_matrix.py) with a portal session for each of its people:
every `data-id` on each page must be among the ids the API returns to that person (asked with an API key of the
same user), and a detail page of an object the API answers 404 for is a 404 page too. A page whose route is not
served (yet) is skipped, so each page is covered from the moment it is added.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from tessera.activation.models import Activation
from tessera.apikeys import authenticate, create_api_key
from tessera.cloud import containers
from tessera.db import create_engine, create_session_factory
from tessera.models import ApiKeyKind, Base
from tessera.reports.models import Report
from tessera.settings import REPO_ROOT, Settings
from tests.api.portal.portal_routes import portal_paths
from tests.api.test_authz_matrix import PRINCIPALS, add_cloud, add_subscriptions, add_webhooks
from tests.conftest import TEST_SECRET, RightsWorld, _truncate_postgres, bearer, build_rights_world

DATA_ID = re.compile(r'data-id="([^"]*)"')
ID_PARAMETER = re.compile(r"{\w*id}")
V1 = "/api/v1"
# A row belonging to one of these objects is part of it: visible exactly when the object is.
PARENT_COLUMNS = {"subscription_id", "order_id", "license_id", "endpoint_id"}

# Each list page and the API lists whose ids it may show.
LIST_PAGES: dict[str, tuple[str, ...]] = {
    "/tickets": ("tickets",),
    "/organizations": ("organizations",),
    "/orders": ("orders",),
    "/approvals": ("orders",),
    "/subscriptions": ("subscriptions",),
    "/activations": ("activations",),
    "/cloud-containers": ("cloud-containers",),
    "/api-keys": ("api-keys",),
    "/webhooks": ("webhook-endpoints",),
    "/reports": ("reports",),
}
# Pages whose world holds something for somebody: showing nothing to everyone would prove nothing.
SOMEONE_SEES = {"/tickets", "/organizations", "/orders", "/subscriptions", "/api-keys", "/webhooks", "/reports"}
# Detail pages and the API read that decides whether the object is within reach.
DETAIL_PAGES: dict[str, tuple[str, str]] = {  # page template: (API template, kind of object)
    "/organizations/{organization_id}": (f"{V1}/organizations/{{id}}", "organizations"),
    "/organizations/{organization_id}/grants": (f"{V1}/organizations/{{id}}/grants", "organizations"),
    "/orders/{order_id}": (f"{V1}/orders/{{id}}", "orders"),
    "/orders/{order_id}/status": (f"{V1}/orders/{{id}}", "orders"),
    "/subscriptions/{subscription_id}": (f"{V1}/subscriptions/{{id}}", "subscriptions"),
    "/webhooks/{endpoint_id}": (f"{V1}/webhook-endpoints/{{id}}", "webhook-endpoints"),
}


@dataclass
class Reach:
    world: RightsWorld
    app: FastAPI
    api: AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    portal_sessions: dict[str, str] = field(default_factory=dict)
    objects: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    """Every object of the world by kind, for the detail pages."""
    _seen: dict[str, dict[str, set[uuid.UUID]]] = field(default_factory=dict)

    async def api_ids(self, principal: str) -> dict[str, set[uuid.UUID]]:
        """What the API lists to this person, by list (cached: the world does not change here)."""
        if principal not in self._seen:
            self._seen[principal] = await self._read_api(principal)
        return self._seen[principal]

    async def _read_api(self, principal: str) -> dict[str, set[uuid.UUID]]:
        auth = bearer(self.world.keys[principal])

        async def listed(path: str, key: str = "id") -> set[uuid.UUID]:
            response = await self.api.get(path, params={"limit": 200}, headers=auth)
            if response.status_code in (403, 404):
                return set()
            assert response.status_code == 200, (path, response.text)
            return {uuid.UUID(item[key]) for item in response.json()["items"]}

        seen = {
            kind: await listed(f"{V1}/{kind}")
            for kind in (
                "tickets",
                "organizations",
                "orders",
                "licenses",
                "subscriptions",
                "cloud-containers",
                "api-keys",
                "webhook-endpoints",
                "reports",
                "users",
            )
        }
        seen["members"], seen["grants"], seen["deliveries"] = set(), set(), set()
        for org in self.world.orgs.values():
            seen["members"] |= await listed(f"{V1}/organizations/{org}/members", "user_id")
            seen["grants"] |= await listed(f"{V1}/organizations/{org}/grants")
        for endpoint in self.world.webhook_endpoints.values():
            seen["deliveries"] |= await listed(f"{V1}/webhook-endpoints/{endpoint}/deliveries")
        # The API lists no activations; one is within reach when its ticket is.
        async with self.sessions() as session:
            rows = (await session.execute(select(Activation.id, Activation.ticket_id))).all()
        seen["activations"] = {activation for activation, ticket in rows if ticket in seen["tickets"]}
        return seen

    async def not_parts_of(self, strays: set[uuid.UUID], visible: set[uuid.UUID]) -> set[uuid.UUID]:
        """The strays that are not rows of an object the person sees (a subscription's terms, an order's lines)."""
        left = set(strays)
        if not left:
            return left
        async with self.sessions() as session:
            for table in Base.metadata.sorted_tables:
                if "id" not in table.c:
                    continue
                for parent in PARENT_COLUMNS & set(table.c.keys()):
                    rows = await session.execute(select(table.c.id, table.c[parent]).where(table.c.id.in_(left)))
                    left -= {row_id for row_id, parent_id in rows.all() if parent_id in visible}
        return left

    async def page(self, principal: str, path: str) -> tuple[int, set[uuid.UUID]]:
        """The status of a page as this person's browser gets it, and the ids it shows."""
        cookies = {"tessera_session": self.portal_sessions[principal]}
        transport = ASGITransport(app=self.app)
        async with AsyncClient(transport=transport, base_url="http://x.test", cookies=cookies) as browser:
            response = await browser.get(path)
        assert response.status_code != 303 or "/signin" not in response.headers["location"], (principal, path)
        if response.status_code != 200:
            return response.status_code, set()
        ids = set()
        for value in DATA_ID.findall(response.text):
            try:
                ids.add(uuid.UUID(value))
            except ValueError:
                pytest.fail(f"{path} shows data-id={value!r}, which is no object id")
        return 200, ids


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def reach_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("reach") / "tessera.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_database")
    yield url
    _truncate_postgres(url)


@pytest.fixture(scope="module")
async def reach(reach_database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Reach]:
    engine = create_engine(reach_database)
    sessions = create_session_factory(engine)
    async with sessions() as session:
        world = await build_rights_world(session)
        world.subscriptions = await add_subscriptions(session, world)
        for scope in ("all", str(world.orgs["R1"])):
            period = {"period": "2026-03", "period_from": date(2026, 3, 1), "period_to": date(2026, 4, 1)}
            file_name = f"r-{scope}.csv"
            session.add(Report(kind="renewals", scope=scope, format="csv", file_name=file_name, totals=[], **period))
        await session.commit()
    await add_webhooks(sessions, world)
    await add_cloud(sessions, world)
    portal_sessions: dict[str, str] = {}
    async with sessions() as session:
        # A personal container too, so "mine" differs from "my organization's".
        member = await authenticate(session, TEST_SECRET, world.keys["customer_member"])
        await containers.create_container(session, member, TEST_SECRET, api_base_url="http://x.test/api/v1")
        for principal in PRINCIPALS:
            _key, portal_sessions[principal] = await create_api_key(
                session, TEST_SECRET, name="portal session", user_id=world.users[principal], kind=ApiKeyKind.session
            )
        await session.commit()
    settings = Settings(
        database_url=reach_database,
        var_dir=Path(tmp_path_factory.mktemp("var")),
        config_dir=REPO_ROOT / "config",
        secret_key=TEST_SECRET.decode(),
        temporal_address="127.0.0.1:1",
    )
    app = create_app(settings)
    transport = ASGITransport(app=app)
    async with app.router.lifespan_context(app), AsyncClient(transport=transport, base_url="http://x.test") as api:
        found = Reach(world=world, app=app, api=api, sessions=sessions, portal_sessions=portal_sessions)
        found.objects = {
            "organizations": list(world.orgs.values()),
            "orders": list(world.orders.values()),
            "subscriptions": list(world.subscriptions.values()),
            "webhook-endpoints": list(world.webhook_endpoints.values()),
        }
        yield found
    await engine.dispose()


def served_or_skip(reach: Reach, template: str) -> None:
    if template not in portal_paths(reach.app, "GET"):
        pytest.skip(f"the portal serves no {template} page")


def ids_in(body: object) -> set[uuid.UUID]:
    """Every id anywhere in an API answer."""
    if isinstance(body, dict):
        return set().union(*(ids_in(value) for value in body.values()))
    if isinstance(body, list):
        return set().union(*(ids_in(value) for value in body))
    if isinstance(body, str) and len(body) == 36:
        try:
            return {uuid.UUID(body)}
        except ValueError:
            return set()
    return set()


def everything(seen: dict[str, set[uuid.UUID]]) -> set[uuid.UUID]:
    return set().union(*seen.values())


@pytest.mark.parametrize("path", sorted(LIST_PAGES))
async def test_a_list_page_shows_only_what_the_api_lists_to_the_same_person(reach: Reach, path: str) -> None:
    served_or_skip(reach, path)
    shown_to_anyone = False
    for principal in PRINCIPALS:
        seen = await reach.api_ids(principal)
        allowed = set().union(*(seen[kind] for kind in LIST_PAGES[path]))
        status, shown = await reach.page(principal, path)
        assert status == 200, (principal, path, status)
        strays = shown - allowed
        assert not strays, f"{path} shows {principal} ids the API does not list to them: {strays}"
        shown_to_anyone |= bool(shown)
    if path in SOMEONE_SEES:
        assert shown_to_anyone, f"{path} shows no data-id to anybody: rows must carry data-id=<their id>"


async def test_group_pages_show_only_what_the_api_shows_and_foreign_groups_are_404(reach: Reach) -> None:
    template = "/organizations/{organization_id}"
    served_or_skip(reach, template)
    for principal in PRINCIPALS:
        seen = await reach.api_ids(principal)
        for name, org in reach.world.orgs.items():
            status, shown = await reach.page(principal, f"/organizations/{org}")
            if org not in seen["organizations"]:
                assert status == 404, (principal, name, status)
                continue
            assert status in (200, 403), (principal, name, status)
            strays = shown - everything(seen)
            assert not strays, f"the group page of {name} shows {principal} ids the API hides: {strays}"


@pytest.mark.parametrize("template", sorted(DETAIL_PAGES))
async def test_a_detail_page_is_404_wherever_the_api_answers_404(reach: Reach, template: str) -> None:
    served_or_skip(reach, template)
    api_template, kind = DETAIL_PAGES[template]
    name = template.split("{", 1)[1].split("}", 1)[0]
    for principal in PRINCIPALS:
        auth = bearer(reach.world.keys[principal])
        seen = await reach.api_ids(principal)
        for object_id in [*reach.objects[kind], uuid.uuid4()]:
            answer = await reach.api.get(api_template.format(id=object_id), headers=auth)
            status, shown = await reach.page(principal, template.replace(f"{{{name}}}", str(object_id)))
            if answer.status_code == 404:
                assert status == 404, (principal, template, object_id, status)
            elif status == 200:
                # What the API's own read of the object names (its terms, cancellations, ...) may show too.
                detail = ids_in(answer.json()) if answer.status_code == 200 else set()
                strays = await reach.not_parts_of(shown - everything(seen) - detail, everything(seen))
                assert not strays, f"{template} shows {principal} ids the API hides: {strays}"
        # A malformed id is a page that does not exist, not an error.
        status, _shown = await reach.page(principal, template.replace(f"{{{name}}}", "not-an-id"))
        assert status == 404, (principal, template, status)


@pytest.mark.parametrize("principal", ["vendor_admin", "customer_member"])
async def test_every_page_with_an_id_in_its_path_is_404_for_an_unknown_or_malformed_id(
    reach: Reach, principal: str
) -> None:
    templates = sorted(path for path in portal_paths(reach.app, "GET") if ID_PARAMETER.search(path))
    if not templates:
        pytest.skip("the portal serves no page with an object id in its path")
    for template in templates:
        for value in (str(uuid.uuid4()), "not-an-id", "0" * 300):
            status, _shown = await reach.page(principal, ID_PARAMETER.sub(value, template))
            assert status == 404, (principal, template, value, status)
