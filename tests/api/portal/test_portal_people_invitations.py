"""Accepting an invitation in the portal: new accounts choose a password and are signed in, existing ones confirm."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import Invitation, Membership, User, utcnow
from tessera.settings import Settings
from tests.api.people import PASSWORD, give_password, invitation_token
from tests.api.portal.browser_forms import browser, csrf_of, sign_in_portal, submit
from tests.conftest import RightsWorld, bearer

Sessions = async_sessionmaker[AsyncSession]


async def invite(api: AsyncClient, world: RightsWorld, email: str, org: str = "C1", by: str = "customer_admin") -> None:
    sent = await api.post(
        "/api/v1/users",
        json={"email": email, "name": "Invitee", "organization_id": str(world.orgs[org]), "role": "member"},
        headers=bearer(world.keys[by]),
    )
    assert sent.status_code == 202, sent.text


def field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', html)
    assert match is not None, f"no error next to {field}"
    return match.group(1)


async def test_a_new_person_chooses_a_password_and_is_signed_in(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    await invite(api, rights_world, "nora@example.com")
    token = await invitation_token(sessions, "nora@example.com")
    url = f"/invitations/{token}"
    page = await api.get(url)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    for label in ("E-mail address", "Your name", "New password", "Accept the invitation"):
        assert label in page.text
    weak = await submit(api, url, email="nora@example.com", name="Nora", password="short")
    assert weak.status_code == 422
    assert "at least 12 characters" in field_error(weak.text, "password")
    common = await submit(api, url, email="nora@example.com", name="Nora", password="password1234")
    assert "most common passwords" in field_error(common.text, "password")
    accepted = await submit(api, url, email="Nora@Example.com", name="Nora", password=PASSWORD)
    assert accepted.status_code == 303, accepted.text
    assert accepted.headers["location"] == "/tickets"
    assert "tessera_session=tsp_" in accepted.headers["set-cookie"]
    account = await api.get("/account")
    assert account.status_code == 200
    assert "nora@example.com" in account.text
    async with sessions() as session:
        user = await session.scalar(select(User).where(User.email == "nora@example.com"))
        assert user is not None
        assert user.name == "Nora"
        assert await session.get(Membership, (user.id, rights_world.orgs["C1"])) is not None
    # The link worked once; reloading the POST changes nothing.
    again = await api.post(url, data={"csrf_token": csrf_of(account.text), "email": "nora@example.com"})
    assert again.status_code == 409
    used = await api.get(url)
    assert used.status_code == 409
    assert "redeemed already" in used.text
    assert '<form method="post" action="/invitations' not in used.text


async def test_unknown_and_expired_links_get_a_clear_page(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    unknown = await api.get("/invitations/not-a-token")
    assert unknown.status_code == 404
    assert "no such invitation" in unknown.text
    await invite(api, rights_world, "late@example.com")
    token = await invitation_token(sessions, "late@example.com")
    async with sessions() as session:
        await session.execute(update(Invitation).values(expires_at=utcnow() - timedelta(minutes=1)))
        await session.commit()
    expired = await api.get(f"/invitations/{token}")
    assert expired.status_code == 410
    assert "expired" in expired.text
    # Markup in a made-up token comes back escaped.
    hostile = await api.get("/invitations/%3Cscript%3Ealert(1)")
    assert hostile.status_code == 404
    assert "<script>alert" not in hostile.text


async def test_the_invitation_only_works_for_the_address_it_was_sent_to_and_needs_the_form_token(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    await invite(api, rights_world, "owner@example.com")
    url = f"/invitations/{await invitation_token(sessions, 'owner@example.com')}"
    other = await submit(api, url, email="someone.else@example.com", name="X", password=PASSWORD)
    assert other.status_code == 422
    assert "not the address this invitation was sent to" in field_error(other.text, "email")
    malformed = await submit(api, url, email="not an address", name="X", password=PASSWORD)
    assert malformed.status_code == 422
    assert field_error(malformed.text, "email")
    hostile = await submit(api, url, email="<script>alert(1)</script>", name="<b>x</b>", password=PASSWORD)
    assert hostile.status_code == 422
    assert "<script>alert" not in hostile.text
    assert "<b>x</b>" not in hostile.text
    oversized = await submit(api, url, email="owner@example.com", name="n" * 201, password=PASSWORD)
    assert oversized.status_code == 422
    assert field_error(oversized.text, "name")
    refused = await api.post(url, data={"email": "owner@example.com", "password": PASSWORD})
    assert refused.status_code == 403
    async with sessions() as session:
        assert await session.scalar(select(User).where(User.email == "owner@example.com")) is None
    # The link still works after the refusals.
    accepted = await submit(api, url, email="owner@example.com", name="Owner", password=PASSWORD)
    assert accepted.status_code == 303


async def test_an_existing_account_confirms_without_a_password_and_signs_in_with_its_own(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    await give_password(sessions, "m.C1@example.com")
    await invite(api, rights_world, "m.C1@example.com", org="C2", by="sibling_admin")
    url = f"/invitations/{await invitation_token(sessions, 'm.c1@example.com')}"
    page = await api.get(url)
    assert page.status_code == 200
    assert "New password" not in page.text
    assert "has an account already" in page.text
    accepted = await submit(api, url, email="m.c1@example.com")
    assert accepted.status_code == 303
    assert accepted.headers["location"] == f"{url}?accepted=1"
    # The link alone signs nobody in to an account that has a password.
    assert "tessera_session" not in api.cookies
    done = await api.get(accepted.headers["location"])
    assert "Sign in with your password" in done.text
    async with sessions() as session:
        assert await session.get(Membership, (rights_world.users["m_C1"], rights_world.orgs["C2"])) is not None
    await sign_in_portal(api, "m.C1@example.com")


async def test_signed_in_as_another_person_the_page_says_so_and_refuses(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    await give_password(sessions, "customer.admin@example.com")
    await invite(api, rights_world, "fresh@example.com")
    url = f"/invitations/{await invitation_token(sessions, 'fresh@example.com')}"
    await sign_in_portal(api, "customer.admin@example.com")
    page = await api.get(url)
    assert page.status_code == 200
    assert "You are signed in as customer.admin@example.com" in page.text
    assert "Accept the invitation</button>" not in page.text
    refused = await api.post(
        url, data={"csrf_token": csrf_of(page.text), "email": "fresh@example.com", "password": PASSWORD}
    )
    assert refused.status_code == 422
    async with sessions() as session:
        assert await session.scalar(select(User).where(User.email == "fresh@example.com")) is None
    # Signed in as the invited person, accepting keeps the session and adds the membership.
    await give_password(sessions, "m.C2@example.com")
    await invite(api, rights_world, "m.C2@example.com", org="C1")
    mine = f"/invitations/{await invitation_token(sessions, 'm.c2@example.com')}"
    async with browser(api) as theirs:
        await sign_in_portal(theirs, "m.C2@example.com")
        accepted = await submit(theirs, mine, email="m.c2@example.com")
        assert accepted.status_code == 303
        assert accepted.headers["location"] == "/tickets"
    async with sessions() as session:
        assert await session.get(Membership, (rights_world.users["m_C2"], rights_world.orgs["C1"])) is not None


async def test_the_page_speaks_german(api: AsyncClient, rights_world: RightsWorld, sessions: Sessions) -> None:
    await invite(api, rights_world, "greta@example.com")
    url = f"/invitations/{await invitation_token(sessions, 'greta@example.com')}"
    page = await api.get(url, headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert page.status_code == 200
    assert "Einladung annehmen" in page.text
    assert "Neues Passwort" in page.text


async def test_two_accepts_of_one_link_at_once_make_one_account(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions, settings: Settings
) -> None:
    if not settings.database_url or not settings.database_url.startswith("postgresql"):
        pytest.skip("a real race needs PostgreSQL's row locks")
    await invite(api, rights_world, "twice@example.com")
    url = f"/invitations/{await invitation_token(sessions, 'twice@example.com')}"
    async with browser(api) as one, browser(api) as two:
        tokens = [csrf_of((await client.get(url)).text) for client in (one, two)]
        answers = await asyncio.gather(
            *(
                client.post(
                    url,
                    data={
                        "csrf_token": token,
                        "email": "twice@example.com",
                        "name": "T",
                        "password": f"{PASSWORD} {n}",
                    },
                )
                for n, (client, token) in enumerate(zip((one, two), tokens, strict=True))
            )
        )
    assert sorted(answer.status_code for answer in answers) == [303, 409], [a.text[:300] for a in answers]
    async with sessions() as session:
        assert len((await session.scalars(select(User).where(User.email == "twice@example.com"))).all()) == 1
