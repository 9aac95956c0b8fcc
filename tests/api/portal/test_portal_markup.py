"""Every page is accessible markup: a language, one heading, a label for every input, unique ids, no inline code.

The pages are read from the application (like the form guard's), opened as the vendor administrator and as a
member, so a page added later is checked without touching this file. The CSP forbids inline scripts and styles;
this test makes sure no page relies on them (they would silently not work).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.people import give_password
from tests.api.portal.browser_forms import browser, sign_in_portal
from tests.api.portal.portal_routes import portal_routes
from tests.api.portal.test_portal_forms_guarded import concrete_path
from tests.conftest import RightsWorld

Sessions = async_sessionmaker[AsyncSession]
UNLABELLED_TYPES = {"hidden", "submit", "button", "reset", "image"}


@dataclass
class Markup(HTMLParser):
    lang: str | None = None
    headings: int = 0
    ids: Counter[str] = field(default_factory=Counter)
    labelled: set[str] = field(default_factory=set)
    controls: list[tuple[str, str | None, bool]] = field(default_factory=list)
    """Each form control, its id, and whether a wrapping label or an aria attribute names it."""
    problems: list[str] = field(default_factory=list)
    _label_depth: int = 0

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids[str(values["id"])] += 1
        if "style" in values:
            self.problems.append(f"inline style on <{tag}>")
        if tag.startswith("on") or any(name.startswith("on") for name in values):
            self.problems.append(f"inline event handler on <{tag}>")
        if tag == "html":
            self.lang = values.get("lang")
        elif tag == "h1":
            self.headings += 1
        elif tag == "script" and not values.get("src"):
            self.problems.append("inline <script>")
        elif tag == "img" and values.get("alt") is None:
            self.problems.append("<img> without alt")
        elif tag == "label":
            self._label_depth += 1
            if values.get("for"):
                self.labelled.add(str(values["for"]))
        elif tag in {"input", "select", "textarea"}:
            kind = (values.get("type") or "text").lower()
            if tag != "input" or kind not in UNLABELLED_TYPES:
                named = bool(values.get("aria-label") or values.get("aria-labelledby") or self._label_depth)
                self.controls.append((f"<{tag} name={values.get('name')!r}>", values.get("id"), named))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_depth = max(0, self._label_depth - 1)

    def check(self) -> list[str]:
        found = list(self.problems)
        if self.lang not in {"en", "de"}:
            found.append(f"<html lang={self.lang!r}>")
        if self.headings != 1:
            found.append(f"{self.headings} <h1> headings")
        found += [f"id {name!r} used {count} times" for name, count in self.ids.items() if count > 1]
        for control, control_id, named in self.controls:
            if not named and (control_id is None or control_id not in self.labelled):
                found.append(f"{control} has no <label for={control_id!r}>")
        return found


def parsed(html: str) -> Markup:
    parser = Markup()
    parser.feed(html)
    return parser


def problems_of(html: str) -> list[str]:
    return parsed(html).check()


def test_the_checker_finds_what_it_looks_for() -> None:
    bad = '<html><h1>a</h1><h1>b</h1><input name="q" id="q"><p style="x" id="a"></p><i id="a"></i><script>1</script>'
    found = problems_of(bad)
    assert "<html lang=None>" in found
    assert "2 <h1> headings" in found
    assert "<input name='q'> has no <label for='q'>" in found
    assert "inline style on <p>" in found
    assert "id 'a' used 2 times" in found
    assert "inline <script>" in found
    assert "<select name='s'> has no <label for=None>" in problems_of('<html lang="en"><h1>x</h1><select name="s">')
    good = '<html lang="de"><h1>x</h1><label for="q">Q</label><input id="q" name="q"><label>R <input name="r"></label>'
    assert problems_of(good) == []


async def test_every_page_is_accessible_markup(api: AsyncClient, rights_world: RightsWorld, sessions: Sessions) -> None:
    app = api._transport.app  # type: ignore[attr-defined]
    pages = [served.path for served in portal_routes(app) if "GET" in served.methods]
    await give_password(sessions, "admin@vendor.example")
    await give_password(sessions, "customer.member@example.com")
    checked = controls = 0
    failures: dict[str, list[str]] = {}
    async with browser(api) as member, browser(api) as visitor:
        await sign_in_portal(api, "admin@vendor.example")
        await sign_in_portal(member, "customer.member@example.com")
        for who, client in (("vendor admin", api), ("member", member), ("signed out", visitor)):
            for template in pages:
                response = await client.get(concrete_path(template, rights_world))
                if response.status_code >= 300 or not response.text.lstrip().lower().startswith("<!doctype html>"):
                    continue  # redirects, downloads, and the fragments a page polls
                checked += 1
                markup = parsed(response.text)
                controls += len(markup.controls)
                found = markup.check()
                if found:
                    failures[f"{who} {template}"] = found
    assert failures == {}
    assert checked > len(pages), "most pages should open: the check would prove little"
    assert controls > 100, "the pages' forms should be among what is checked"
