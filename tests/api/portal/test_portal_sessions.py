"""Portal sessions: sign-in and sign-out, cookie flags, CSRF on every form, and sessions apart from API keys."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import ApiKey, ApiKeyKind
from tests.api.people import give_password
from tests.api.portal.browser_forms import browser, csrf_of, sign_in_portal, submit
from tests.conftest import RightsWorld, bearer

Sessions = async_sessionmaker[AsyncSession]
ADMIN = "customer.admin@example.com"


async def test_signing_in_sets_an_http_only_lax_cookie_and_signing_out_revokes_it(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    await give_password(sessions, ADMIN)
    page = await api.get("/signin")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    signed_in = await sign_in_portal(api, ADMIN)
    cookie = signed_in.headers["set-cookie"]
    assert "tessera_session=tsp_" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http here; behind https the cookie is Secure
    token = api.cookies["tessera_session"]
    # Signed in: the sign-in page sends you on.
    assert (await api.get("/signin")).status_code == 303
    async with sessions() as session:
        key = await session.scalar(select(ApiKey).where(ApiKey.kind == ApiKeyKind.session))
        assert key is not None
        assert key.user_id == rights_world.users["customer_admin"]
    # The session is no API key, and an API key is no session.
    assert (await api.get("/api/v1/tickets", headers=bearer(token))).status_code == 401

    # Sign out; a copy of the cookie kept elsewhere stops working as well.
    home = await api.get("/signin?next=/")
    assert home.status_code == 303
    async with browser(api) as copy:
        copy.cookies.set("tessera_session", token)
        assert (await copy.get("/signin")).status_code == 303
        out = await api.post("/signout", data={"csrf_token": csrf_of((await api.get("/account")).text)})
        assert out.status_code == 303
        assert (await copy.get("/signin")).status_code == 200
    async with sessions() as session:
        key = await session.scalar(select(ApiKey).where(ApiKey.kind == ApiKeyKind.session))
        assert key is not None
        assert key.revoked_at is not None


async def test_a_form_without_this_browsers_csrf_token_is_refused(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    await give_password(sessions, ADMIN)
    await api.get("/signin")
    refused = await api.post("/signin", data={"email": ADMIN, "password": "correct horse battery staple"})
    assert refused.status_code == 403
    assert "form has expired" in refused.text
    forged = await api.post("/signin", data={"email": ADMIN, "password": "x", "csrf_token": "A" * 43})
    assert forged.status_code == 403
    # Another browser's token does not fit this browser's cookie.
    async with browser(api) as other:
        theirs = csrf_of((await other.get("/signin")).text)
    stolen = await api.post("/signin", data={"email": ADMIN, "password": "x", "csrf_token": theirs})
    assert stolen.status_code == 403
    assert "tessera_session" not in api.cookies


async def test_a_wrong_password_is_answered_on_the_page_without_saying_which_part_was_wrong(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    await give_password(sessions, ADMIN)
    wrong = await submit(api, "/signin", email=ADMIN, password="not the password")
    unknown = await submit(api, "/signin", email="ghost@example.com", password="not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "The e-mail address or the password is wrong." in wrong.text
    assert "tessera_session" not in api.cookies


async def test_sign_in_failures_are_rate_limited(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    await give_password(sessions, ADMIN)
    statuses = [(await submit(api, "/signin", email=ADMIN, password=f"wrong {n}")).status_code for n in range(7)]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]
    # Even the right password waits now.
    assert (await submit(api, "/signin", email=ADMIN, password="correct horse battery staple")).status_code == 429


async def test_after_sign_in_only_local_paths_are_followed(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    await give_password(sessions, ADMIN)
    page = await api.get("/signin")
    response = await api.post(
        "/signin",
        data={
            "csrf_token": csrf_of(page.text),
            "email": ADMIN,
            "password": "correct horse battery staple",
            "next": "//evil.example/phish",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/tickets"


async def test_a_new_password_ends_every_session_of_the_account(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    await give_password(sessions, ADMIN)
    await sign_in_portal(api, ADMIN)
    async with browser(api) as laptop:
        await sign_in_portal(laptop, ADMIN)
        assert (await laptop.get("/account")).status_code == 200
        weak = await submit(
            api,
            "/account",
            "/account/password",
            current_password="correct horse battery staple",
            password="password",
            password_repeat="password",
        )
        assert weak.status_code == 422
        assert "use at least 12 characters" in weak.text
        changed = await submit(
            api,
            "/account",
            "/account/password",
            current_password="correct horse battery staple",
            password="a much longer new secret",
            password_repeat="a much longer new secret",
        )
        assert changed.status_code == 303
        assert (await laptop.get("/account")).status_code == 303  # sent to sign in
        assert (await api.get("/account")).status_code == 303
    await sign_in_portal(api, ADMIN, "a much longer new secret")
    assert (await api.get("/account")).status_code == 200


async def test_pages_need_a_session_and_send_you_back_after_sign_in(api: AsyncClient) -> None:
    response = await api.get("/account")
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=%2Faccount"


async def test_a_form_posted_after_the_session_ended_leads_to_the_sign_in_page(api: AsyncClient) -> None:
    response = await api.post("/account/profile", data={"name": "x", "locale": "en"})
    assert response.status_code == 303
    assert response.headers["location"] == "/signin"  # not back to a POST-only address
