"""A page that fails after writing shows the error page and keeps nothing of what it wrote.

The create-license page relies on it: the intake stores an order before it reserves quota, and a refusal after
that point (quota gone, organization moved) must not leave the order behind.
"""

from __future__ import annotations

from fastapi import APIRouter
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select
from starlette.responses import Response

from api.app import create_app
from api.deps import Session
from api.portal.deps import SignedInPage
from api.portal.routing import PortalRoute
from tessera.errors import NotFound
from tessera.models import User
from tessera.settings import Settings
from tests.api.portal.orders_world import Sessions, portal_user
from tests.conftest import RightsWorld


async def test_a_page_failing_after_a_write_keeps_nothing_and_still_knows_who_looks(
    settings: Settings, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    router = APIRouter(route_class=PortalRoute, include_in_schema=False)

    @router.get("/broken")
    async def broken(page: SignedInPage, session: Session) -> Response:
        """Rename the viewer, then fail."""
        assert page.viewer is not None
        user = await session.get(User, page.viewer.user_id)
        assert user is not None
        user.name = "renamed by a failing page"
        await session.flush()
        raise NotFound("nothing here")

    app = create_app(settings)
    app.include_router(router)
    transport = ASGITransport(app=app)
    async with app.router.lifespan_context(app), AsyncClient(transport=transport, base_url="http://t.test") as client:
        await portal_user(client, sessions, w, "customer_admin")
        first = await client.get("/broken")  # the session's first use: its key's last use is written too
        assert first.status_code == 404
        assert "nothing here" in first.text
        assert "Sign out" in first.text  # the error page still knows who is signed in
        assert (await client.get("/broken")).status_code == 404
    async with sessions() as session:
        name = await session.scalar(select(User.name).where(User.id == w.users["customer_admin"]))
    assert name == "customer_admin"
