"""Notifications and published events, written to the outbox (`event` table) exactly once per business key.

Templates are what analysts write, so they render in Jinja2's sandbox; `.html` templates are autoescaped.
A rendered text may start with a `Subject: ...` line, which becomes the subject.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, DictLoader, FileSystemLoader, StrictUndefined, Template, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tessera.db import insert_once
from tessera.models import Event, EventKind, new_id, utcnow


def template_environment(templates_dir: Path) -> SandboxedEnvironment:
    return _environment(FileSystemLoader(templates_dir))


def _environment(loader: BaseLoader) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=loader,
        autoescape=select_autoescape(["html", "htm", "html.j2"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def render(environment: SandboxedEnvironment, template: str, variables: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) of a template."""
    return _split(environment.get_template(template).render(**variables))


def render_source(name: str, source: str, variables: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) of a template's text as an order started with it; `name` decides HTML escaping."""
    return _split(_compiled(name, source).render(**variables))


@lru_cache(maxsize=512)
def _compiled(name: str, source: str) -> Template:
    # Compiling is most of a render's cost, and every run of a step hands over the same text: a renewal herd
    # renders one template thousands of times. Keyed by the text itself, so an edited template is compiled anew.
    return _environment(DictLoader({name: source})).get_template(name)


def _split(rendered: str) -> tuple[str, str]:
    text = rendered.lstrip("\n")
    first, _, rest = text.partition("\n")
    if first.lower().startswith("subject:"):
        return first.split(":", 1)[1].strip(), rest.lstrip("\n")
    return "", text


async def write_event(
    session: AsyncSession,
    *,
    key: str,
    kind: EventKind,
    name: str,
    organization_id: uuid.UUID | None,
    order_id: uuid.UUID | None,
    recipients: list[str] | None = None,
    subject: str = "",
    body: str = "",
    payload: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Insert the event unless one with `key` exists (a retried step writes it once); its id either way."""
    event_id = new_id()
    values = {
        "id": event_id,
        "key": key,
        "kind": kind,
        "name": name,
        "organization_id": organization_id,
        "order_id": order_id,
        "recipients": recipients or [],
        "subject": subject,
        "body": body,
        "payload": payload or {},
        "created_at": utcnow(),
    }
    if await insert_once(session, Event.__table__, values, unique="key"):  # type: ignore[arg-type]
        return event_id
    existing = await session.scalar(select(Event.id).where(Event.key == key))
    assert existing is not None
    return existing
