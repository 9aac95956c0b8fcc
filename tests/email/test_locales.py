"""Messages in the recipient's language: choice of translation, checks, notify rows per language, invitations."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.orders import OrderActivities
from tessera.auth.invitations import InvitationPolicy, create_invitation
from tessera.email.delivery import deliver
from tessera.email.locales import choose
from tessera.errors import ConfigError
from tessera.models import Event, Organization, Role, User
from tessera.processes import load_workflows, parse_workflows, resolve_steps
from tessera.settings import REPO_ROOT, Settings
from tests.conftest import TEST_SECRET, RightsWorld
from tests.email.outbox_rows import mailer
from tests.email.smtp_server import smtp_server
from tests.workflows.order_harness import place_order
from workflows.order_models import ApplyInput, NotifyInput, translated_sources

TEMPLATES = REPO_ROOT / "config" / "templates"


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("de", "de"), ("de-AT", "de"), ("DE_ch", "de"), ("pt-BR", "pt-BR"), ("pt-PT", "pt"), ("fr", None), (None, None)],
)
def test_a_locale_finds_its_translation(tag: str | None, expected: str | None) -> None:
    assert choose(tag, ["de", "pt", "pt-BR"]) == expected


def test_every_shipped_template_has_a_german_translation() -> None:
    english = sorted(path.name for path in TEMPLATES.glob("*.j2"))
    assert english == sorted(path.name for path in (TEMPLATES / "de").glob("*.j2"))


def test_translations_travel_with_the_run_and_count_in_the_version(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    workflows = REPO_ROOT / "config" / "workflows.yaml"
    config = load_workflows(workflows, templates)
    resolved = resolve_steps(config, "license_order", product="PRO-CAD", organization_ids=[])
    german = translated_sources(resolved.templates, "order_fulfilled.txt.j2")
    assert german == {"de": (templates / "de" / "order_fulfilled.txt.j2").read_text()}
    (templates / "de" / "order_fulfilled.txt.j2").write_text("Subject: Fertig\n\n{{ order.quantity }}\n")
    assert load_workflows(workflows, templates).version_hash() != config.version_hash()


def test_workflows_check_checks_every_translation(tmp_path: Path) -> None:
    (tmp_path / "done.txt.j2").write_text("{{ order.quantity }}\n")
    (tmp_path / "de").mkdir()
    (tmp_path / "de" / "done.txt.j2").write_text("{{ order.quantity }} {{ ordr.id }}\n")
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "done.txt.j2").write_text("{% if %}\n")
    text = """
license_order: {steps: [{kind: create_license}, {kind: notify, template: done.txt.j2, to: [requester]}]}
subscription: {steps: [{kind: renew}]}
cancellation: {steps: [{kind: cancel}]}
revocation: {steps: [{kind: revoke}]}
report: {steps: [{kind: webhook, event: report.ready}]}
"""
    with pytest.raises(ConfigError) as caught:
        parse_workflows(text, "w.yaml", tmp_path)
    messages = [issue.message for issue in caught.value.issues]
    assert any("'de/done.txt.j2' uses ordr" in message for message in messages), messages
    assert any("'fr/done.txt.j2' line 1" in message for message in messages), messages


async def _notify(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], world: RightsWorld, to: list[str]
) -> uuid.UUID:
    order = await place_order(sessions, world)
    config = load_workflows(REPO_ROOT / "config" / "workflows.yaml", TEMPLATES)
    resolved = resolve_steps(config, "license_order", product="PRO-CAD", organization_ids=[])
    activities = OrderActivities(sessions, TEST_SECRET, TEMPLATES, settings.portal_url)
    notify = NotifyInput(
        order_id=str(order.id),
        key="notify:4",
        template="order_fulfilled.txt.j2",
        source=resolved.templates["order_fulfilled.txt.j2"],
        translations=translated_sources(resolved.templates, "order_fulfilled.txt.j2"),
        to=to,
    )
    for _ in range(2):  # a retried activity writes the same rows
        await activities.apply(ApplyInput(order_id=str(order.id), actions=[notify]))
    return order.id


async def test_notify_writes_one_row_per_language_and_the_german_one_is_mailed_in_german(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    async with sessions() as session:
        await session.execute(
            update(User).where(User.id == rights_world.users["customer_admin"]).values(locale="de-AT")
        )
        await session.commit()
    order_id = await _notify(
        settings, sessions, rights_world, ["requester", "customer.member@example.com", "outsider@example.org"]
    )
    async with sessions() as session:
        rows = list(await session.scalars(select(Event).where(Event.order_id == order_id).order_by(Event.key)))
    assert [(row.key.split(":", 1)[1], row.recipients, row.payload["locale"]) for row in rows] == [
        ("notify:4", ["customer.member@example.com", "outsider@example.org"], "en"),
        ("notify:4:de", ["customer.admin@example.com"], "de"),
    ]
    english, german = rows
    assert english.subject == "3 × PRO-CAD ready"  # noqa: RUF001 - the template's own sign
    assert german.subject == "3 × PRO-CAD bereit"  # noqa: RUF001
    assert "Ihre Bestellung" in german.body
    with smtp_server() as smtp:
        await deliver(sessions, mailer(smtp.url()), german.id)
    [received] = smtp.recorder.received
    assert received.message["Subject"] == "3 × PRO-CAD bereit"  # noqa: RUF001
    assert received.message["Content-Language"] == "de"
    assert "Ihre Tickets warten im Portal" in received.text


async def test_without_a_user_locale_the_organization_decides(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    async with sessions() as session:
        await session.execute(
            update(Organization).where(Organization.id == rights_world.orgs["C1"]).values(locale="de")
        )
        await session.execute(update(User).where(User.id == rights_world.users["customer_admin"]).values(locale="en"))
        await session.commit()
    order_id = await _notify(settings, sessions, rights_world, ["requester", "someone@example.org"])
    async with sessions() as session:
        rows = {
            row.key.rsplit(":", 1)[-1]: row
            for row in await session.scalars(select(Event).where(Event.order_id == order_id))
        }
    # The requester chose English; an address without an account reads the organization's German.
    assert rows["4"].recipients == ["customer.admin@example.com"]
    assert rows["de"].recipients == ["someone@example.org"]


async def test_invitations_are_written_in_the_invitees_language(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], rights_world: RightsWorld
) -> None:
    policy = InvitationPolicy.from_settings(settings)
    async with sessions() as session:
        await session.execute(
            update(Organization).where(Organization.id == rights_world.orgs["C1"]).values(locale="de")
        )
        new, _ = await create_invitation(
            session, policy, email="neu@example.com", organization_id=rights_world.orgs["C1"], role=Role.member
        )
        chosen, _ = await create_invitation(
            session,
            policy,
            email="en@example.com",
            organization_id=rights_world.orgs["C1"],
            role=Role.member,
            locale="en",
        )
        # An existing account reads its own language, whatever the organization's.
        existing, _ = await create_invitation(
            session, policy, email="m.c2@example.com", organization_id=rights_world.orgs["C1"], role=Role.member
        )
        await session.commit()
        events = {
            event.recipients[0]: event
            for event in await session.scalars(select(Event).where(Event.key.like("invitation-%")))
        }
    assert new.locale == "de"
    assert events["neu@example.com"].subject.startswith("Einladung zu C1")
    assert "Nehmen Sie die Einladung hier an" in events["neu@example.com"].body
    assert chosen.locale == "en"
    assert events["en@example.com"].subject == "You are invited to C1"
    assert events["m.c2@example.com"].subject == "You are invited to C1"
    assert existing.locale == "de"  # what a new account would get; the existing one keeps its own
