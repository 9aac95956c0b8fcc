"""The README's curl examples that send a body, sent as written: the API must read the body they carry.

The API takes JSON only; an example that forgets `Content-Type: application/json` gets a 422 on `(body)` however
right its JSON is, so readers copying it would never get past the first step.
"""

from __future__ import annotations

import re
import shlex
import uuid
from typing import Any

from httpx import AsyncClient

from tessera.settings import REPO_ROOT
from tests.conftest import RightsWorld

SHELL_VARIABLE = re.compile(r"\$(\w+)")


def curl_commands() -> list[list[str]]:
    """Every curl command in the README that sends a body, as words (continuation lines and quotes joined)."""
    commands, pending = [], ""
    for line in (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if not pending and "curl " not in line:
            continue
        pending += line.rstrip().removesuffix("\\") + "\n"
        try:
            words = shlex.split(pending[pending.index("curl ") :], comments=True)
        except ValueError:  # a quoted body goes on on the next line
            continue
        if not line.rstrip().endswith("\\"):
            pending = ""
            if "-d" in words and not any("$2" in word or "$3" in word for word in words):
                commands.append(words)
    return commands


def request_of(words: list[str], variables: dict[str, str]) -> dict[str, Any]:
    words = [SHELL_VARIABLE.sub(lambda match: variables[match.group(1)], word) for word in words]
    request: dict[str, Any] = {"method": "GET", "headers": {}}
    options = iter(words[1:])
    for word in options:
        if word == "-X":
            request["method"] = next(options)
        elif word == "-H":
            name, value = next(options).split(":", 1)
            request["headers"][name] = value.strip()
        elif word == "-d":
            request["content"] = next(options).encode()
            request["method"] = "POST" if request["method"] == "GET" else request["method"]
            # What curl sends with -d when the command names no type itself.
            request["headers"].setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif not word.startswith("-"):
            request["url"] = word
    return request


async def test_every_readme_curl_with_a_body_is_read_by_the_api(api: AsyncClient, rights_world: RightsWorld) -> None:
    variables = {"TESSERA": "http://tessera.test", "KEY": rights_world.keys["vendor_admin"]}
    variables["CONTOSO"] = str(rights_world.orgs["C1"])
    variables["SUB"] = str(uuid.uuid4())  # none such: the body is still read (and judged) before the lookup
    # Cloud containers: a ticket code, and a container and credential that do not exist (the body is still read).
    variables |= {"CODE": rights_world.codes["own"], "ID": str(uuid.uuid4()), "CREDENTIAL": "tcc_none"}
    commands = curl_commands()
    assert len(commands) >= 3, commands  # invitations, sign-in, orders
    for words in commands:
        request = request_of(words, variables)
        answer = await api.request(**request)
        fields = [issue["field"] for issue in answer.json().get("errors", [])] if answer.content else []
        assert answer.status_code != 400, (words, answer.text)
        assert "(body)" not in fields, (words, answer.text)
        # The body was read and judged on what it says.
        if request["url"].endswith("/invitations/redeem"):
            assert answer.json()["code"] == "invitation-not-found", answer.text
        if request["url"].endswith("/auth/keys"):
            assert answer.json()["code"] == "sign-in-failed", answer.text
