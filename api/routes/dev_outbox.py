"""GET /dev/outbox: the messages waiting in the outbox, for whoever runs `tessera dev` on this machine.

Mounted only when TESSERA_DEV_OUTBOX is on (`tessera dev` turns it on) and answering only loopback clients: the
messages hold invitation links, which are credentials. Anyone else gets a 404, as if it did not exist.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from jinja2.sandbox import SandboxedEnvironment

from api.deps import Session, State
from tessera.email.outbox import MAX_LIMIT, linked_html, recent_notifications
from tessera.errors import FieldIssue, InvalidInput, NotFound

router = APIRouter(include_in_schema=False)

_PAGE = SandboxedEnvironment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Tessera outbox</title></head>
<body>
<h1>Outbox</h1>
<p>{{ intro }}</p>
{% for message in messages %}
<article>
  <h2>{{ message.subject or "(no subject)" }}</h2>
  <p>To {{ message.recipients | join(", ") or "nobody" }} · {{ message.created_at.isoformat(timespec="seconds") }}
     · {{ message.locale }} · <strong>{{ message.status }}</strong>
     {%- if message.detail %} ({{ message.detail }}){% endif %}</p>
  <pre>{{ link(message.body) }}</pre>
</article>
{% else %}
<p>No messages yet.</p>
{% endfor %}
</body></html>
"""
)


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/dev/outbox", response_class=HTMLResponse)
async def dev_outbox(
    request: Request,
    session: Session,
    state: State,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="How many messages, newest first.")] = 50,
) -> HTMLResponse:
    """The newest notifications in the outbox, with their links clickable."""
    if not _loopback(request):
        raise NotFound("not found")
    # Pages outside the API schema are skipped by the app-wide check of query parameters; this one checks its own.
    unknown = sorted(set(request.query_params) - {"limit"})
    if unknown or len(request.query_params.getlist("limit")) > 1:
        issues = [FieldIssue(f"query.{name}", "unknown query parameter; this page takes: limit") for name in unknown]
        raise InvalidInput(
            "this page takes one query parameter: limit",
            issues=issues or [FieldIssue("query.limit", "given more than once")],
        )
    smtp = state.settings.smtp_server()
    messages = await recent_notifications(session, limit, smtp_configured=smtp is not None)
    intro = (
        f"Messages are sent through {smtp.describe()}."
        if smtp
        else "No SMTP server is configured (TESSERA_SMTP_URL), so messages stay here."
    )
    html = _PAGE.render(messages=messages, intro=intro, link=linked_html)
    return HTMLResponse(html, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
