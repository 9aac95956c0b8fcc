"""Invitations: how people get in, and why adding someone tells the inviter nothing about other accounts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import Event, Invitation, Membership, User, utcnow
from tests.api.people import PASSWORD, give_password, invitation_token, join, sign_in
from tests.conftest import RightsWorld, bearer

Count = Callable[[str], Awaitable[int]]
Sessions = async_sessionmaker[AsyncSession]


def invite_body(world: RightsWorld, email: str, org: str = "C1", role: str = "member") -> dict[str, str]:
    return {"email": email, "name": "Invitee", "organization_id": str(world.orgs[org]), "role": role}


async def test_an_invitee_sets_a_password_joins_and_signs_in(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    sent = await api.post(
        "/api/v1/users",
        json=invite_body(w, "erin@example.com", "G1", "admin"),
        headers=bearer(w.keys["customer_admin"]),
    )
    assert sent.status_code == 202, sent.text
    assert set(sent.json()) == {"id", "email", "organization_id", "role", "expires_at", "created_at"}
    token = await invitation_token(sessions, "erin@example.com")
    async with sessions() as session:
        stored = await session.scalar(select(Invitation).where(Invitation.email == "erin@example.com"))
        event = await session.scalar(select(Event).where(Event.name == "invitation.txt.j2"))
    assert stored is not None
    assert event is not None
    assert token.encode() not in stored.token_hash  # stored hashed only
    assert event.organization_id is None  # the link is the invitee's credential: no admin lists it
    assert stored.expires_at - stored.created_at == timedelta(days=7)
    redeemed = await api.post(
        "/api/v1/invitations/redeem", json={"token": token, "email": "Erin@Example.com", "password": PASSWORD}
    )
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["membership"] == {
        "organization_id": str(w.orgs["G1"]),
        "user_id": redeemed.json()["user_id"],
        "role": "admin",
    }
    key = await sign_in(api, "erin@example.com")
    me = (await api.get("/api/v1/users/me", headers=bearer(key))).json()
    assert me["user"]["email"] == "erin@example.com"
    assert [(m["organization_id"], m["role"]) for m in me["memberships"]] == [(str(w.orgs["G1"]), "admin")]
    # The other admins of the subtree cannot read the invitation's message from the outbox.
    events = (await api.get("/api/v1/events", headers=bearer(w.keys["customer_admin"]))).json()["items"]
    assert all(token not in item.get("body", "") for item in events)


async def test_an_invitation_works_once(api: AsyncClient, rights_world: RightsWorld, sessions: Sessions) -> None:
    w = rights_world
    await api.post("/api/v1/users", json=invite_body(w, "once@example.com"), headers=bearer(w.keys["customer_admin"]))
    token = await invitation_token(sessions, "once@example.com")
    body = {"token": token, "email": "once@example.com", "password": PASSWORD}
    assert (await api.post("/api/v1/invitations/redeem", json=body)).status_code == 200
    again = await api.post("/api/v1/invitations/redeem", json={**body, "password": "another long passphrase"})
    assert again.status_code == 409
    assert again.json()["code"] == "invitation-redeemed"
    # The second attempt changed nothing: the first password still signs in.
    await sign_in(api, "once@example.com")


async def test_inviting_again_leaves_only_the_newest_link_valid(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    admin = bearer(w.keys["customer_admin"])
    await api.post("/api/v1/users", json=invite_body(w, "twice@example.com"), headers=admin)
    first = await invitation_token(sessions, "twice@example.com")
    await api.post("/api/v1/users", json=invite_body(w, "twice@example.com", role="admin"), headers=admin)
    second = await invitation_token(sessions, "twice@example.com")
    assert first != second
    # An invitation elsewhere is another matter and stays valid.
    await api.post("/api/v1/users", json=invite_body(w, "twice@example.com", "G1"), headers=admin)
    body = {"email": "twice@example.com", "password": PASSWORD}
    old = await api.post("/api/v1/invitations/redeem", json={**body, "token": first})
    assert old.status_code == 410
    new = await api.post("/api/v1/invitations/redeem", json={**body, "token": second})
    assert new.status_code == 200
    assert new.json()["membership"]["role"] == "admin"
    await join(api, sessions, "twice@example.com", password=None)


async def test_an_expired_invitation_is_refused(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await api.post("/api/v1/users", json=invite_body(w, "late@example.com"), headers=bearer(w.keys["customer_admin"]))
    token = await invitation_token(sessions, "late@example.com")
    async with sessions() as session:
        await session.execute(update(Invitation).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    body = {"token": token, "email": "late@example.com", "password": PASSWORD}
    expired = await api.post("/api/v1/invitations/redeem", json=body)
    assert expired.status_code == 410
    assert expired.json()["code"] == "invitation-expired"
    async with sessions() as session:
        assert await session.scalar(select(User).where(User.email == "late@example.com")) is None


async def test_an_invitation_for_another_address_is_refused(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    await api.post("/api/v1/users", json=invite_body(w, "meant@example.com"), headers=bearer(w.keys["customer_admin"]))
    token = await invitation_token(sessions, "meant@example.com")
    # The existing account of a member elsewhere cannot be the one that takes this invitation.
    body = {"token": token, "email": "m.c3@example.com", "password": PASSWORD}
    foreign = await api.post("/api/v1/invitations/redeem", json=body)
    assert foreign.status_code == 422
    assert foreign.json()["code"] == "invitation-for-another-address"
    assert foreign.json()["errors"][0]["field"] == "email"
    unknown = await api.post("/api/v1/invitations/redeem", json={**body, "token": "x" * 43})
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "invitation-not-found"


@pytest.mark.parametrize(
    ("password", "reason"),
    [("short", "at least 12"), ("1qaz2wsx3edc", "most common"), ("weak@example.com", "e-mail")],
)
async def test_weak_passwords_are_refused_naming_the_field(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions, password: str, reason: str
) -> None:
    w = rights_world
    await api.post("/api/v1/users", json=invite_body(w, "weak@example.com"), headers=bearer(w.keys["customer_admin"]))
    token = await invitation_token(sessions, "weak@example.com")
    refused = await api.post(
        "/api/v1/invitations/redeem", json={"token": token, "email": "weak@example.com", "password": password}
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "password"
    assert reason in refused.json()["errors"][0]["message"]
    # Nothing was used up: a good password still works with the same link.
    await join(api, sessions, "weak@example.com")


async def test_adding_a_known_or_unknown_address_answers_alike(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    """A reseller admin adding another reseller's admin learns nothing and enrols nobody without consent."""
    w = rights_world
    admin = bearer(w.keys["reseller_admin"])
    known = await api.post(
        "/api/v1/users", json=invite_body(w, "foreign.admin@example.com", "R1", "admin"), headers=admin
    )
    unknown = await api.post("/api/v1/users", json=invite_body(w, "nobody@example.com", "R1", "admin"), headers=admin)
    assert known.status_code == unknown.status_code == 202
    assert set(known.json()) == set(unknown.json())
    for field in ("id", "created_at", "expires_at", "email"):
        known.json().pop(field), unknown.json().pop(field)
    strip = {"id", "created_at", "expires_at", "email"}
    assert {k: v for k, v in known.json().items() if k not in strip} == {
        k: v for k, v in unknown.json().items() if k not in strip
    }
    assert str(w.users["foreign_admin"]) not in known.text
    assert "foreign_admin" not in known.text  # her name
    # Not a member until she accepts, so still invisible, and a PUT with her id finds nobody.
    put = await api.put(
        f"/api/v1/organizations/{w.orgs['R1']}/members/{w.users['foreign_admin']}",
        json={"role": "admin"},
        headers=admin,
    )
    assert put.status_code == 404
    assert (await api.get(f"/api/v1/users/{w.users['foreign_admin']}", headers=admin)).status_code == 404
    async with sessions() as session:
        memberships = (
            await session.scalars(select(Membership).where(Membership.user_id == w.users["foreign_admin"]))
        ).all()
    assert [(m.organization_id, m.role) for m in memberships] == [(w.orgs["C3"], "admin")]


async def test_an_existing_account_joins_only_when_it_accepts(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    admin = bearer(w.keys["reseller_admin"])
    await api.post("/api/v1/users", json=invite_body(w, "m.c3@example.com", "R1", "member"), headers=admin)
    async with sessions() as session:
        user = await session.get(User, w.users["m_C3"])
        assert user is not None
        assert await session.get(Membership, (user.id, w.orgs["R1"])) is None
    # The account has no password yet (made before sign-in existed), so accepting sets one.
    await join(api, sessions, "m.c3@example.com")
    async with sessions() as session:
        membership = await session.get(Membership, (w.users["m_C3"], w.orgs["R1"]))
    assert membership is not None
    assert membership.role == "member"
    # Invited again elsewhere, an account with a password accepts with the token alone.
    await api.post("/api/v1/users", json=invite_body(w, "m.c3@example.com", "C2"), headers=admin)
    token = await invitation_token(sessions, "m.c3@example.com")
    with_password = await api.post(
        "/api/v1/invitations/redeem", json={"token": token, "email": "m.c3@example.com", "password": PASSWORD}
    )
    assert with_password.status_code == 422
    assert with_password.json()["errors"][0]["field"] == "password"
    await join(api, sessions, "m.c3@example.com", password=None)
    await sign_in(api, "m.c3@example.com")


async def test_put_member_invites_a_visible_user_and_changes_roles_directly(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    admin = bearer(w.keys["reseller_admin"])
    # m_C1 is visible to the reseller admin; joining C2 still waits for consent.
    invited = await api.put(
        f"/api/v1/organizations/{w.orgs['C2']}/members/{w.users['m_C1']}", json={"role": "admin"}, headers=admin
    )
    assert invited.status_code == 202, invited.text
    assert invited.json()["email"] == "m.c1@example.com"
    async with sessions() as session:
        assert await session.get(Membership, (w.users["m_C1"], w.orgs["C2"])) is None
    await join(api, sessions, "m.c1@example.com")
    async with sessions() as session:
        membership = await session.get(Membership, (w.users["m_C1"], w.orgs["C2"]))
    assert membership is not None
    assert membership.role == "admin"
    demoted = await api.put(
        f"/api/v1/organizations/{w.orgs['C2']}/members/{w.users['m_C1']}", json={"role": "member"}, headers=admin
    )
    assert demoted.status_code == 200
    assert demoted.json()["role"] == "member"


@pytest.mark.parametrize(
    ("email", "accepted_as"),
    [
        ("Foreign.Admin@EXAMPLE.com", "foreign.admin@example.com"),  # case: the same account
        ("foreign.admin@ex\u0430mple.com", "foreign.admin@xn--exmple-4nf.com"),  # Cyrillic a: another domain
        ("foreign.admin\u202e@example.com", None),  # bidi override
        ("foreign.adm\u0456n@example.com", None),  # Cyrillic i in the local part
        ("foreign.admin\x00@example.com", None),
    ],
)
async def test_addresses_are_normalized_or_refused(
    api: AsyncClient, rights_world: RightsWorld, email: str, accepted_as: str | None
) -> None:
    w = rights_world
    response = await api.post("/api/v1/users", json=invite_body(w, email), headers=bearer(w.keys["customer_admin"]))
    if accepted_as is None:
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "email"
    else:
        assert response.status_code == 202, response.text
        assert response.json()["email"] == accepted_as


@pytest.mark.parametrize("bad", ["a\x00b", "a\x1bb", "evil\u202etxt.exe", "x\u2066y", "lone \ud800 surrogate"])
async def test_control_and_bidi_characters_are_refused_in_any_text_field(
    api: AsyncClient, rights_world: RightsWorld, bad: str, row_count: Count
) -> None:
    w = rights_world
    admin = bearer(w.keys["customer_admin"])

    async def send(method: str, path: str, body: dict[str, Any]) -> Response:
        # Escaped JSON, as any client may send it: the text itself need not be encodable.
        content = json.dumps(body, ensure_ascii=True)
        return await api.request(method, path, content=content, headers={**admin, "Content-Type": "application/json"})

    before = await row_count("invitation")
    invited = await send("POST", "/api/v1/users", {**invite_body(w, "ok@example.com"), "name": bad})
    assert invited.status_code == 422
    assert invited.json()["errors"][0]["field"] == "name"
    assert await row_count("invitation") == before
    org = await send("PATCH", f"/api/v1/organizations/{w.orgs['C1']}", {"name": bad})
    assert org.status_code == 422
    assert org.json()["errors"][0]["field"] == "name"
    key = await send("POST", "/api/v1/api-keys", {"name": "k", "scopes": [bad]})
    assert key.status_code == 422
    assert key.json()["errors"][0]["field"] == "scopes"


async def test_two_concurrent_redeems_one_wins(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers: the race is PostgreSQL's")
    w = rights_world
    admin = bearer(w.keys["customer_admin"])
    for round_no in range(5):
        email = f"race{round_no}@example.com"
        await api.post("/api/v1/users", json=invite_body(w, email), headers=admin)
        token = await invitation_token(sessions, email)
        answers = await asyncio.gather(
            *(
                api.post(
                    "/api/v1/invitations/redeem",
                    json={"token": token, "email": email, "password": f"{PASSWORD} number {n}"},
                )
                for n in range(2)
            )
        )
        assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
        async with sessions() as session:
            users = (await session.scalars(select(User).where(User.email == email))).all()
            assert len(users) == 1
            members = (await session.scalars(select(Membership).where(Membership.user_id == users[0].id))).all()
            assert len(members) == 1
        winner = next(n for n, a in enumerate(answers) if a.status_code == 200)
        await sign_in(api, email, f"{PASSWORD} number {winner}")


async def test_an_invitation_is_withdrawn_with_the_rights_of_whoever_sent_it(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    # An administrator about to be removed invites a second address of theirs as admin...
    sent = await api.post(
        "/api/v1/users",
        json=invite_body(w, "spare@example.com", role="admin"),
        headers=bearer(w.keys["customer_admin"]),
    )
    assert sent.status_code == 202, sent.text
    token = await invitation_token(sessions, "spare@example.com")
    removed = await api.delete(
        f"/api/v1/organizations/{w.orgs['C1']}/members/{w.users['customer_admin']}",
        headers=bearer(w.keys["reseller_admin"]),
    )
    assert removed.status_code == 204, removed.text
    # ...and cannot walk back in with it after the removal.
    body = {"token": token, "email": "spare@example.com", "password": PASSWORD}
    refused = await api.post("/api/v1/invitations/redeem", json=body)
    assert refused.status_code == 410, refused.text
    assert refused.json()["code"] == "invitation-expired"
    assert "withdrawn" in refused.json()["detail"]
    page = await api.get(f"/invitations/{token}")
    assert page.status_code == 410
    async with sessions() as session:
        assert await session.scalar(select(User).where(User.email == "spare@example.com")) is None
    # A service key that invited, and was revoked since (it leaked, say), no longer lets its invitations in.
    service_key = (
        await api.post(
            "/api/v1/api-keys",
            json={"name": "erp", "organization_id": str(w.orgs["C1"])},
            headers=bearer(w.keys["reseller_admin"]),
        )
    ).json()
    await api.post("/api/v1/users", json=invite_body(w, "leak@example.com"), headers=bearer(service_key["secret"]))
    token = await invitation_token(sessions, "leak@example.com")
    revoked = await api.delete(f"/api/v1/api-keys/{service_key['id']}", headers=bearer(w.keys["reseller_admin"]))
    assert revoked.status_code == 204, revoked.text
    body = {"token": token, "email": "leak@example.com", "password": PASSWORD}
    assert (await api.post("/api/v1/invitations/redeem", json=body)).status_code == 410
    # The invitations of those who still administer the organization stay good.
    await api.post("/api/v1/users", json=invite_body(w, "kept@example.com"), headers=bearer(w.keys["reseller_admin"]))
    await join(api, sessions, "kept@example.com")


async def test_a_member_accepting_an_invitation_while_being_removed_never_fails(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    user, email = w.users["m_C1"], "m.c1@example.com"
    await give_password(sessions, "m.C1@example.com")
    for name in ("customer_admin", "reseller_admin"):  # a key's first use is a write of its own
        assert (await api.get("/api/v1/users/me", headers=bearer(w.keys[name]))).status_code == 200
    member_url = f"/api/v1/organizations/{w.orgs['C1']}/members/{user}"
    for _round in range(6):
        sent = await api.post(
            "/api/v1/users", json=invite_body(w, email, role="admin"), headers=bearer(w.keys["customer_admin"])
        )
        assert sent.status_code == 202, sent.text
        token = await invitation_token(sessions, email)
        redeem, remove = await asyncio.wait_for(
            asyncio.gather(
                api.post("/api/v1/invitations/redeem", json={"token": token, "email": email}),
                api.delete(member_url, headers=bearer(w.keys["reseller_admin"])),
            ),
            60,
        )
        assert redeem.status_code == 200, redeem.text
        assert remove.status_code == 204, remove.text
        async with sessions() as session:
            membership = await session.get(Membership, (user, w.orgs["C1"]))
            # Accepted after the removal: a member again, as invited; before it: removed.
            assert membership is None or membership.role == "admin"
            if membership is None:
                session.add(Membership(user_id=user, organization_id=w.orgs["C1"], role="member"))
            else:
                membership.role = "member"
            await session.commit()


async def test_an_account_activated_by_its_invitation_takes_the_name_its_owner_types(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    async with sessions() as session:
        session.add(User(email="unnamed@example.com", name="Vendor administrator"))
        await session.commit()
    sent = await api.post(
        "/api/v1/users", json=invite_body(w, "unnamed@example.com"), headers=bearer(w.keys["customer_admin"])
    )
    assert sent.status_code == 202, sent.text
    body = {
        "token": await invitation_token(sessions, "unnamed@example.com"),
        "email": "unnamed@example.com",
        "password": PASSWORD,
        "name": "Una Named",
    }
    assert (await api.post("/api/v1/invitations/redeem", json=body)).status_code == 200
    async with sessions() as session:
        assert await session.scalar(select(User.name).where(User.email == "unnamed@example.com")) == "Una Named"
