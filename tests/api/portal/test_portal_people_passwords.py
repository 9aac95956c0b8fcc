"""Forgotten passwords: the same answer for every address, a one-time link by e-mail, sessions end, keys stay."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import ApiKey, ApiKeyKind, Event, PasswordReset, User, utcnow
from tessera.settings import Settings
from tests.api.people import PASSWORD, client_for, give_password
from tests.api.portal.browser_forms import browser, csrf_of, sign_in_portal, submit
from tests.conftest import RightsWorld, bearer

Sessions = async_sessionmaker[AsyncSession]
ADMIN = "customer.admin@example.com"
LINK = re.compile(r"/password/reset/([A-Za-z0-9_-]+)")
NEW_PASSWORD = "a different long passphrase"


async def reset_mails(sessions: Sessions) -> list[Event]:
    async with sessions() as session:
        rows = await session.scalars(select(Event).where(Event.name == "password_reset.txt.j2"))
        return sorted(rows.all(), key=lambda event: event.created_at)


async def newest_link(sessions: Sessions) -> str:
    mails = await reset_mails(sessions)
    assert mails, "no reset link was sent"
    match = LINK.search(mails[-1].body)
    assert match is not None, mails[-1].body
    return f"/password/reset/{match.group(1)}"


async def ask(client: AsyncClient, email: str) -> int:
    response = await submit(client, "/password/forgot", email=email)
    return response.status_code


async def test_a_reset_link_sets_a_new_password_once_ends_sessions_and_keeps_keys(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    await give_password(sessions, ADMIN)
    async with browser(api) as elsewhere:
        await sign_in_portal(elsewhere, ADMIN)
        page = await api.get("/password/forgot")
        assert "E-mail address" in page.text
        assert "Send reset link" in page.text
        asked = await submit(api, "/password/forgot", email=ADMIN)
        assert asked.status_code == 303
        assert asked.headers["location"] == "/password/forgot?sent=1"
        assert "if an account exists" in (await api.get(asked.headers["location"])).text.lower()
        mails = await reset_mails(sessions)
        assert [mail.recipients for mail in mails] == [[ADMIN]]
        assert mails[0].organization_id is None  # the link is a credential: in no organization's event list
        url = await newest_link(sessions)
        async with sessions() as session:
            stored = await session.scalar(select(PasswordReset))
            assert stored is not None
            assert url.rsplit("/", 1)[1].encode() not in stored.token_hash  # only a hash is kept

        form = await api.get(url)
        assert form.status_code == 200
        for label in ("New password", "New password again", "Set password"):
            assert label in form.text
        forged = await api.post(url, data={"password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD})
        assert forged.status_code == 403
        differ = await submit(api, url, password=NEW_PASSWORD, password_repeat=NEW_PASSWORD + "x")
        assert differ.status_code == 422
        assert "differ" in differ.text
        weak = await submit(api, url, password="short", password_repeat="short")
        assert weak.status_code == 422
        assert 'id="password-error">use at least 12 characters' in weak.text
        done = await submit(api, url, password=NEW_PASSWORD, password_repeat=NEW_PASSWORD)
        assert done.status_code == 303
        assert done.headers["location"] == "/signin?changed=1"
        # Every portal session of the account ended; its API keys still work.
        assert (await elsewhere.get("/account")).status_code == 303
    assert (await api.get("/api/v1/users/me", headers=bearer(rights_world.keys["customer_admin"]))).status_code == 200
    # The link works once.
    used = await api.get(url)
    assert used.status_code == 409
    assert "used already" in used.text
    # The old password is gone, the new one works.
    wrong = await submit(api, "/signin", email=ADMIN, password=PASSWORD)
    assert wrong.status_code == 401
    await sign_in_portal(api, ADMIN, NEW_PASSWORD)


async def test_an_unknown_address_gets_the_same_answer_and_no_mail(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    known = await submit(api, "/password/forgot", email=ADMIN)
    unknown = await submit(api, "/password/forgot", email="nobody@example.com")
    assert (known.status_code, known.headers["location"]) == (unknown.status_code, unknown.headers["location"])
    assert [mail.recipients for mail in await reset_mails(sessions)] == [[ADMIN]]
    malformed = await submit(api, "/password/forgot", email="not an address")
    assert malformed.status_code == 422
    assert 'id="email-error"' in malformed.text
    refused = await api.post("/password/forgot", data={"email": ADMIN})
    assert refused.status_code == 403
    assert len(await reset_mails(sessions)) == 1


async def test_a_newer_link_replaces_the_older_and_links_expire(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    await ask(api, ADMIN)
    first = await newest_link(sessions)
    await ask(api, ADMIN)
    second = await newest_link(sessions)
    assert first != second
    assert (await api.get(first)).status_code == 410
    assert (await api.get(second)).status_code == 200
    async with sessions() as session:
        await session.execute(update(PasswordReset).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    expired = await api.get(second)
    assert expired.status_code == 410
    assert "expired" in expired.text
    late = await api.post(
        second,
        data={
            "csrf_token": csrf_of((await api.get("/password/forgot")).text),
            "password": NEW_PASSWORD,
            "password_repeat": NEW_PASSWORD,
        },
    )
    assert late.status_code == 410
    assert (await api.get("/password/reset/made-up")).status_code == 404


async def test_requests_are_rate_limited_per_address(
    settings: Settings, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    strict = settings.model_copy(update={"password_reset_limit_account": "2/hour"})
    async with client_for(strict) as client:
        assert [await ask(client, ADMIN) for _ in range(2)] == [303, 303]
        limited = await submit(client, "/password/forgot", email=ADMIN)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) > 0
        assert "Too many requests" in limited.text
        # An address without an account is counted the same way, so the limit tells nothing either.
        assert [await ask(client, "nobody@example.com") for _ in range(3)] == [303, 303, 429]
    assert len(await reset_mails(sessions)) == 2


async def test_two_uses_of_one_link_at_once_set_one_password(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions, settings: Settings
) -> None:
    del rights_world
    if not settings.database_url or not settings.database_url.startswith("postgresql"):
        pytest.skip("a real race needs PostgreSQL's row locks")
    await ask(api, ADMIN)
    url = await newest_link(sessions)
    async with browser(api) as one, browser(api) as two:
        tokens = [csrf_of((await client.get(url)).text) for client in (one, two)]
        answers = await asyncio.gather(
            *(
                client.post(
                    url,
                    data={
                        "csrf_token": token,
                        "password": f"{NEW_PASSWORD} {n}",
                        "password_repeat": f"{NEW_PASSWORD} {n}",
                    },
                )
                for n, (client, token) in enumerate(zip((one, two), tokens, strict=True))
            )
        )
    assert sorted(answer.status_code for answer in answers) == [303, 409], [a.text[:300] for a in answers]
    winner = next(n for n, answer in enumerate(answers) if answer.status_code == 303)
    await sign_in_portal(api, ADMIN, f"{NEW_PASSWORD} {winner}")
    async with sessions() as session:
        keys = (await session.scalars(select(ApiKey).where(ApiKey.kind == ApiKeyKind.session))).all()
        assert len(keys) == 1


async def test_changing_the_password_on_the_account_page_ends_open_reset_links(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    await give_password(sessions, ADMIN)
    await ask(api, ADMIN)
    url = await newest_link(sessions)
    await sign_in_portal(api, ADMIN)
    changed = await submit(
        api,
        "/account",
        "/account/password",
        current_password=PASSWORD,
        password=NEW_PASSWORD,
        password_repeat=NEW_PASSWORD,
    )
    assert changed.status_code == 303
    assert (await api.get(url)).status_code == 410


async def test_the_mail_is_written_in_the_accounts_language(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    async with sessions() as session:
        await session.execute(update(User).where(User.id == rights_world.users["customer_admin"]).values(locale="de"))
        await session.commit()
    await ask(api, ADMIN)
    mail = (await reset_mails(sessions))[-1]
    assert mail.subject == "Neues Tessera-Passwort wählen"
    assert "der Link gilt einmal" in mail.body


async def test_using_a_link_in_a_browser_signed_in_as_someone_else_signs_that_browser_out(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    del rights_world
    await give_password(sessions, "customer.member@example.com")
    await ask(api, ADMIN)
    url = await newest_link(sessions)
    await sign_in_portal(api, "customer.member@example.com")
    token = api.cookies["tessera_session"]
    done = await submit(api, url, password=NEW_PASSWORD, password_repeat=NEW_PASSWORD)
    assert done.status_code == 303
    assert "tessera_session" not in api.cookies
    async with browser(api) as copy:
        copy.cookies.set("tessera_session", token)
        assert (await copy.get("/account")).status_code == 303
    await sign_in_portal(api, ADMIN, NEW_PASSWORD)
