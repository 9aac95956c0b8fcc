"""The repository explains itself: its code, configuration and docs cite no specification kept elsewhere."""

from __future__ import annotations

import re
import subprocess

from tessera.settings import REPO_ROOT

# A section sign, or a specification named in capitals, points at a document that is not part of this
# repository. Spelt with an escape and a join so that this file does not match itself.
OUTSIDE_REFERENCE = re.compile("\u00a7|\\b" + "SP" + "EC\\b")
CHECKED_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".j2", ".toml", ".txt", ".html")


def tracked_files() -> list[str]:
    listing = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return [name for name in listing.stdout.splitlines() if name.endswith(CHECKED_SUFFIXES)]


def test_nothing_cites_a_document_outside_the_repository() -> None:
    files = tracked_files()
    assert len(files) > 50, "git ls-files found too little to check"
    citing = [
        f"{name}:{number}"
        for name in files
        for number, line in enumerate((REPO_ROOT / name).read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE_REFERENCE.search(line)
    ]
    assert citing == [], f"cite docs/domain.md or the README instead: {citing}"


def test_the_domain_rules_are_in_the_repository() -> None:
    domain = (REPO_ROOT / "docs" / "domain.md").read_text(encoding="utf-8")
    for rule in ("used + delegated ≤ quota", "One license = one ticket", "never re-recorded"):
        assert rule in domain
