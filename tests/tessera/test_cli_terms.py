"""`tessera terms`: what a subscription configuration does, as a table or JSON; bad options are named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.cli import app
from tessera.settings import REPO_ROOT

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["terms", *args])
    # Rich draws errors in a box that wraps long lines; compare the words only.
    words = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())
    return result.exit_code, result.stdout, words


def test_table_lists_one_row_per_term() -> None:
    code, out, _ = run(
        "--start", "2026-12-31", "--align", "calendar_year", "--notice", "P3M", "--count", "3",
        "--tz", "Europe/Berlin", "--price", "1200.00", "--currency", "EUR",
    )  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("term P1Y, alignment calendar_year, first term prorate")
    assert "partial term of 1 day(s)" in lines[1]
    header = next(index for index, line in enumerate(lines) if line.startswith("term  "))
    rows = [line.split() for line in lines[header + 1 : header + 4]]
    assert lines[header + 4 :] == [
        "term 1: the last day to cancel is before the term starts; its renewal is committed at once"
    ]
    assert rows == [
        ["1", "2026-12-31", "2026-12-31", "2026-12-31T23:00:00Z", "2026-09-30", "3.29", "EUR"],
        ["2", "2027-01-01", "2027-12-31", "2027-12-31T23:00:00Z", "2027-09-30", "1200.00", "EUR"],
        ["3", "2028-01-01", "2028-12-31", "2028-12-31T23:00:00Z", "2028-09-30", "1200.00", "EUR"],
    ]


def test_json_carries_every_field() -> None:
    code, out, _ = run(
        "--start", "2026-07-15", "--align", "fiscal_year", "--fiscal-start", "04-01", "--first-term", "free",
        "--cutoff-days", "10", "--term", "P1Y", "--notice", "P30D", "--count", "2", "--price", "1000",
        "--currency", "JPY", "--format", "json",
    )  # fmt: skip
    assert code == 0
    document = json.loads(out)
    assert document["settings"]["fiscal_year_start"] == {"month": 4, "day": 1}
    assert (document["stub_days"], document["first_term_extended"]) == (260, False)
    first, second = document["terms"]
    assert first == {
        "number": 1,
        "first_day": "2026-07-15",
        "valid_through": "2027-03-31",
        "starts_at": "2026-07-15T00:00:00Z",
        "ends_at": "2027-04-01T00:00:00Z",
        "last_day_to_cancel": "2027-03-01",
        "cancel_deadline_at": "2027-03-02T00:00:00Z",
        "price": "0",
        "currency": "JPY",
    }
    assert (second["first_day"], second["price"]) == ("2027-04-01", "1000")


def test_defaults_are_the_catalogs() -> None:
    code, out, _ = run("--start", "2024-02-29", "--count", "4", "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert (document["settings"]["term"], document["settings"]["notice_period"]) == ("P1Y", "P1M")
    assert [term["valid_through"] for term in document["terms"]] == [
        "2025-02-27",
        "2026-02-27",
        "2027-02-27",
        "2028-02-28",
    ]
    assert document["terms"][0]["price"] is None


def test_settings_from_a_catalog_product() -> None:
    catalog = str(REPO_ROOT / "config" / "catalog.yaml")
    code, out, _ = run("--start", "2026-03-31", "--product", "SIM-CLOUD-Y", "--catalog", catalog, "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert (document["price"], document["currency"]) == ("990.00", "EUR")
    assert document["terms"][0]["last_day_to_cancel"] == "2027-02-28"
    code, _, err = run("--start", "2026-03-31", "--product", "NOPE", "--catalog", catalog)
    assert code == 2
    assert "'--product'" in err
    assert "SIM-CLOUD-Y" in err
    code, _, err = run("--start", "2026-03-31", "--product", "SIM-CLOUD-Y", "--catalog", catalog, "--term", "P1M")
    assert code == 2
    assert "'--term'" in err


def test_a_broken_catalog_file_is_reported_with_its_file(tmp_path: Path) -> None:
    broken = tmp_path / "catalog.yaml"
    broken.write_text("products:\n  - code: X\n    kind: nonsense\n", encoding="utf-8")
    result = runner.invoke(app, ["terms", "--start", "2026-01-01", "--product", "X", "--catalog", str(broken)])
    assert result.exit_code == 2
    assert str(broken) in result.stderr


@pytest.mark.parametrize(
    ("args", "option", "words"),
    [
        (["--start", "2026-13-01"], "--start", "is not a date"),
        (["--start", "2026-01-01", "--term", "P1M", "--notice", "P1M"], "--notice", "is as long as a term"),
        (["--start", "2026-01-01", "--term", "P1Y", "--notice", "P2Y"], "--notice", "is as long as a term"),
        (["--start", "2026-01-01", "--term", "1 year"], "--term", "not an ISO 8601 duration"),
        (["--start", "2026-01-01", "--term", "PT12H"], "--term", "whole number of years"),
        (["--start", "2026-01-01", "--notice", "PT5H"], "--notice", "whole number of years"),
        (["--start", "2026-01-01", "--count", "0"], "--count", ""),
        (["--start", "2026-01-01", "--count", "601"], "--count", ""),
        (["--start", "2026-01-01", "--align", "weekly"], "--align", "calendar_year"),
        (["--start", "2026-01-01", "--align", "fiscal_year"], "--fiscal-start", "needs the fiscal year's start"),
        (["--start", "2026-01-01", "--fiscal-start", "04-01"], "--fiscal-start", "only used with --align fiscal_year"),
        (["--start", "2026-01-01", "--align", "fiscal_year", "--fiscal-start", "4/1"], "--fiscal-start", "MM-DD"),
        (["--start", "2026-01-01", "--align", "fiscal_year", "--fiscal-start", "02-29"], "--fiscal-start", "28"),
        (["--start", "2026-01-01", "--first-term", "half"], "--first-term", "prorate"),
        (["--start", "2026-01-01", "--cutoff-days", "-1"], "--cutoff-days", "0"),
        (["--start", "2026-01-01", "--cutoff-days", "367"], "--cutoff-days", "366"),
        (["--start", "2026-01-01", "--tz", "Mars/Base"], "--tz", "not an IANA time zone"),
        (["--start", "2026-01-01", "--price", "12.00"], "--currency", "go together"),
        (["--start", "2026-01-01", "--currency", "EUR"], "--price", "go together"),
        (["--start", "2026-01-01", "--price", "1,5", "--currency", "EUR"], "--price", "decimal"),
        (["--start", "2026-01-01", "--price", "-3", "--currency", "EUR"], "--price", "non-negative"),
        (["--start", "2026-01-01", "--price", "3", "--currency", "XXX"], "--currency", "ISO 4217"),
        (["--start", "2026-01-01", "--catalog", "x.yaml"], "--catalog", "only used with --product"),
        (["--start", "2026-01-01", "--format", "xml"], "--format", ""),
        (["--start", "9990-01-01", "--count", "20"], "--count", "after the year 9999"),
    ],
)
def test_bad_options_are_named(args: list[str], option: str, words: str) -> None:
    code, out, err = run(*args)
    assert code == 2
    assert out == ""
    assert f"'{option}'" in err
    assert words in err


def test_start_is_required() -> None:
    code, _, err = run("--count", "3")
    assert code == 2
    assert "'--start'" in err


def test_the_table_warns_when_a_deadline_falls_before_its_term() -> None:
    args = ["--start", "2027-01-20", "--align", "fiscal_year", "--fiscal-start", "04-01", "--notice", "P3M"]
    code, out, _ = run(*args, "--price", "1200.00", "--currency", "EUR", "--count", "2")
    assert code == 0
    assert "233.42 EUR" in out
    assert out.splitlines()[-1].startswith("term 1: the last day to cancel is before the term starts")
    code, out, _ = run(*args, "--cutoff-days", "90", "--count", "2")
    assert code == 0
    assert "before the term starts" not in out


def test_the_readme_example_is_what_the_command_prints() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Subscription terms") :]
    command = section[section.index("tessera terms ") : section.index("```", section.index("tessera terms "))]
    args = command.replace("\\\n", " ").split()[2:]
    code, out, _ = run(*args)
    assert code == 0
    assert f"```\n{out}```" in section
