"""The grants page: what an organization holds, delegating within bounds, refusals next to the field; races."""

from __future__ import annotations

import re
import uuid

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.models import Grant, Ticket
from tests.api.portal.browser_forms import browser, csrf_of, submit
from tests.api.portal.test_portal_groups import api_ids, ids_in, row, signed_in
from tests.api.test_rights_concurrency import at_once, check_grant_invariants, new_org
from tests.conftest import RightsWorld

Sessions = async_sessionmaker[AsyncSession]


def cells(html: str, grant_id: uuid.UUID) -> list[str]:
    """The text of each cell of a grant's row."""
    return [
        " ".join(re.sub(r"<[^>]+>", " ", cell).split())
        for cell in re.findall(r"<td>(.*?)</td>", row(html, grant_id), re.S)
    ]


async def test_the_grants_page_shows_quota_used_delegated_and_left_and_the_form_to_whoever_may_delegate(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1 = w.orgs["C1"]
    async with browser(api) as reseller:
        await signed_in(reseller, sessions, "reseller_admin")
        page = await reseller.get(f"/organizations/{c1}/grants")
        assert page.status_code == 200
        assert "<h1>Grants</h1>" in page.text
        assert ids_in(page.text) == await api_ids(api, w.keys["reseller_admin"], f"/organizations/{c1}/grants")
        # Product group, permissions, quota, used, delegated (1 to G1), left, delegable, delegated from.
        assert cells(page.text, w.grants["C1"])[:8] == ["CAD CAD", "allocate create", "10", "0", "1", "9", "yes", "R1"]
        for label in ("Product group", "create", "revoke", "cancel", "allocate", "Quota", "Delegable"):
            assert f">{label}</label>" in page.text, label
        assert "Save grant" in page.text
        assert "Withdraw" in page.text
        # "Change" fills the form with the grant as it is.
        change = (await reseller.get(f"/organizations/{c1}/grants?group=CAD")).text
        assert 'value="create" checked' in change
        assert 'value="revoke">' in change
        assert 'name="quota" type="number" value="10"' in change
    async with browser(api) as admin:
        # Contoso's admin reads Contoso's grant but changes it only from above; on its group it may delegate.
        await signed_in(admin, sessions, "customer_admin")
        own = (await admin.get(f"/organizations/{c1}/grants")).text
        assert f'data-id="{w.grants["C1"]}"' in own
        assert "Save grant" not in own
        assert cells(own, w.grants["C1"])[7] == "an organization above"  # R1 lies beyond its reach
        assert "Save grant" in (await admin.get(f"/organizations/{w.orgs['G1']}/grants")).text
    async with browser(api) as member:
        await signed_in(member, sessions, "customer_member")
        page = await member.get(f"/organizations/{c1}/grants")
        assert page.status_code == 200
        assert f'data-id="{w.grants["C1"]}"' in page.text
        assert "Save grant" not in page.text
        assert "Withdraw" not in page.text
        assert (await member.get(f"/organizations/{w.orgs['G1']}/grants")).status_code == 404


async def test_a_grant_is_delegated_within_bounds_and_refused_beyond_them_next_to_the_field(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    tailspin = await new_org(api, w, "R1", "customer", "Tailspin")
    url = f"/organizations/{tailspin}/grants"
    async with browser(api) as reseller:
        await signed_in(reseller, sessions, "reseller_admin")
        # R1 holds 100, gave 10 to C1 and 5 to C2: 85 are left.
        beyond = await submit(reseller, url, product_group="CAD", permissions="create", quota="86")
        assert beyond.status_code == 403
        assert '<p class="field-error" id="quota-error">exceeds the 85 remaining' in beyond.text
        assert 'value="86"' in beyond.text
        for fields, field, status in (
            ({"product_group": "CAD", "quota": "5"}, "permissions", 422),
            ({"product_group": "CAD", "permissions": "create", "quota": "many"}, "quota", 422),
            ({"product_group": "CAD", "permissions": "create", "quota": str(2**31)}, "quota", 422),
            ({"product_group": "CAD", "permissions": "create", "quota": "-1"}, "quota", 422),
            ({"product_group": "CAD", "permissions": "fly", "quota": "1"}, "permissions", 422),
            ({"product_group": "NOPE", "permissions": "create", "quota": "1"}, "product_group", 422),
            ({"product_group": "CAD", "permissions": "create"}, "quota", 403),  # R1 has a quota: so must this
        ):
            refused = await submit(reseller, url, **fields)
            assert refused.status_code == status, (fields, refused.text)
            assert f'id="{field}-error"' in refused.text, fields
        saved = await submit(reseller, url, product_group="CAD", permissions="create", quota="85")
        assert saved.status_code == 303
        page = (await reseller.get(saved.headers["location"])).text
        assert "The grant is saved." in page
        async with sessions() as session:
            grant = await session.scalar(select(Grant).where(Grant.organization_id == tailspin))
            assert grant is not None
            assert (grant.permissions, grant.quota, grant.parent_grant_id) == (["create"], 85, w.grants["R1"])
        assert cells(page, grant.id)[:6] == ["CAD CAD", "create", "85", "0", "0", "85"]
        assert cells((await reseller.get(f"/organizations/{w.orgs['R1']}/grants")).text, w.grants["R1"])[5] == "0"
    async with browser(api) as admin:
        # Contoso lacks `revoke`: it cannot give it to its group.
        await signed_in(admin, sessions, "customer_admin")
        g1 = f"/organizations/{w.orgs['G1']}/grants"
        revoke = await submit(admin, g1, product_group="CAD", permissions="revoke", quota="1")
        assert revoke.status_code == 403
        assert (
            '<p class="field-error" id="permissions-error">the delegating grant does not include revoke' in revoke.text
        )
        # Nor may it grant to a sibling, which it does not even see.
        token = csrf_of((await admin.get(g1)).text)
        foreign = await admin.post(
            f"/organizations/{w.orgs['C2']}/grants",
            data={"csrf_token": token, "product_group": "CAD", "permissions": "create", "quota": "1"},
        )
        assert foreign.status_code == 404


async def test_withdrawing_takes_what_was_delegated_with_it_and_only_from_above(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1 = w.orgs["C1"]
    async with browser(api) as member:
        await signed_in(member, sessions, "customer_member")
        token = csrf_of((await member.get(f"/organizations/{c1}/grants")).text)
        refused = await member.post(f"/organizations/{c1}/grants/CAD/withdraw", data={"csrf_token": token})
        assert refused.status_code == 403
        granting = await member.post(
            f"/organizations/{c1}/grants",
            data={"csrf_token": token, "product_group": "CAD", "permissions": "create", "quota": "1"},
        )
        assert granting.status_code == 403
        assert "only whoever holds the grant this one was delegated from may change it" in granting.text
    async with browser(api) as reseller:
        await signed_in(reseller, sessions, "reseller_admin")
        no_token = await reseller.post(f"/organizations/{c1}/grants/CAD/withdraw", data={})
        assert no_token.status_code == 403
        no_token_save = await reseller.post(
            f"/organizations/{c1}/grants", data={"product_group": "CAD", "permissions": "create", "quota": "1"}
        )
        assert no_token_save.status_code == 403
        async with sessions() as session:
            assert (await session.get(Grant, w.grants["C1"])).withdrawn_at is None  # type: ignore[union-attr]
        withdrawn = await submit(reseller, f"/organizations/{c1}/grants", f"/organizations/{c1}/grants/CAD/withdraw")
        assert withdrawn.status_code == 303
        page = (await reseller.get(withdrawn.headers["location"])).text
        assert "The grant is withdrawn" in page
        assert f'data-id="{w.grants["C1"]}"' not in page
        async with sessions() as session:
            for name in ("C1", "G1"):
                grant = await session.get(Grant, w.grants[name])
                assert grant is not None
                assert grant.withdrawn_at is not None, name
        # Withdrawn already: nothing is done twice.
        token = csrf_of(page)
        again = await reseller.post(f"/organizations/{c1}/grants/CAD/withdraw", data={"csrf_token": token})
        assert again.status_code == 404


async def test_concurrent_save_grant_keeps_the_quota_invariant(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    customers = [await new_org(api, w, "R1", "customer", f"Race {n}") for n in range(6)]
    async with browser(api) as reseller:
        await signed_in(reseller, sessions, "reseller_admin")
        token = csrf_of((await reseller.get(f"/organizations/{customers[0]}/grants")).text)
        fields = {"csrf_token": token, "product_group": "CAD", "permissions": "create", "quota": "30"}
        # 85 are left on R1's grant: two grants of 30 fit, a third does not, whatever the order.
        answers = await at_once(*(reseller.post(f"/organizations/{c}/grants", data=fields) for c in customers))
        assert sorted(answer.status_code for answer in answers) == [303, 303, 403, 403, 403, 403]
        for answer in answers:
            if answer.status_code == 403:
                assert 'id="quota-error"' in answer.text
        # The same new grant saved ten times at once is created once.
        same = {**fields, "quota": "1"}
        target = await new_org(api, w, "R1", "customer", "Race again")
        repeated = await at_once(*(reseller.post(f"/organizations/{target}/grants", data=same) for _ in range(10)))
        assert [answer.status_code for answer in repeated] == [303] * 10
    grants = await check_grant_invariants(sessions)
    assert sorted(g.quota or 0 for g in grants if g.organization_id in customers) == [30, 30]
    assert [g.quota for g in grants if g.organization_id == target] == [1]


async def test_allocating_to_a_member_while_another_admin_removes_them_never_leaves_the_ticket_with_them(
    api: AsyncClient, rights_world: RightsWorld, sessions: Sessions
) -> None:
    w = rights_world
    c1, leaver = w.orgs["C1"], w.users["m_C1"]
    tickets = [w.tickets["own"], w.tickets["own_admins_only"]]
    async with browser(api) as allocating, browser(api) as removing:
        await signed_in(allocating, sessions, "customer_admin")
        await signed_in(removing, sessions, "reseller_admin")
        mine = csrf_of((await allocating.get(f"/organizations/{c1}")).text)
        theirs = csrf_of((await removing.get(f"/organizations/{c1}")).text)
        answers = await at_once(
            *(
                allocating.post(
                    f"/organizations/{c1}/tickets/{ticket}",
                    data={"csrf_token": mine, "allocate_to": str(leaver), "visibility": "admins_only"},
                )
                for ticket in tickets
            ),
            removing.post(f"/organizations/{c1}/members/{leaver}/remove", data={"csrf_token": theirs}),
        )
    assert answers[-1].status_code == 303
    # Each allocation either came first (and went back on leaving) or saw the member gone (refused).
    assert {answer.status_code for answer in answers[:-1]} <= {303, 422}
    async with sessions() as session:
        held = (await session.scalars(select(Ticket.id).where(Ticket.allocated_user_id == leaver))).all()
    assert held == []
