"""`tessera report`: the file and its manifest from the command line, previews and recorded runs, checks."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import shutil
import sys
from datetime import date
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.settings import REPO_ROOT, Settings
from tests.report_world import add_subscription, build_report_world


async def _tessera(settings: Settings, cwd: Path, *args: str, config: Path | None = None) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": settings.resolved_database_url,
        "TESSERA_SECRET_KEY": "test-secret-key-not-for-production",
        "TESSERA_CONFIG_DIR": str(config or REPO_ROOT / "config"),
        "TESSERA_REPORTS_DIR": str(cwd / "recorded"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tessera", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_preview_writes_the_file_and_manifest_and_a_recorded_run_goes_to_the_reports_directory(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    async with sessions() as session, session.begin():
        world = await build_report_world(session)
        subscription = await add_subscription(session, world, "C1", date(2026, 2, 1), 2)
    code, out, err = await _tessera(settings, tmp_path, "report", "renewals", "--month", "2026-03", "--out", "m.csv")
    assert code == 0, err
    assert "a preview" in out
    data = (tmp_path / "m.csv").read_bytes()
    manifest = json.loads((tmp_path / "m.csv.manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["row_count"] == 1
    assert manifest["totals"] == [{"currency": "EUR", "rows": 1, "net_amount": "240.00"}]
    assert manifest["period"] == {"key": "2026-03", "from": "2026-03-01", "to": "2026-04-01"}
    [row] = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    assert row["row_id"] == f"REN-{subscription}-2"

    code, out, err = await _tessera(settings, tmp_path, "report", "active", "--on", "2026-02-31", "--format", "json")
    assert code == 0, err
    assert json.loads((tmp_path / "active-subscriptions-2026-02-28.json").read_text())["rows"]

    code, out, err = await _tessera(settings, tmp_path, "report", "renewals", "--month", "2026-03", "--record")
    assert code == 0, err
    assert out.startswith("recorded: report ")
    assert (tmp_path / "recorded" / "renewals-2026-03.csv").read_bytes() == data
    code, out, err = await _tessera(settings, tmp_path, "report", "renewals", "--month", "2026-03", "--record")
    assert out.startswith("recorded before: report ")

    for args, message in (
        (("renewals", "--from", "2026-04-01", "--to", "2026-03-01"), "--to must come after --from"),
        (("renewals", "--month", "2026-3x"), "--month"),
        (("active", "--on", "2026-13-01"), "--on"),
        (("renewals", "--month", "2026-03", "--format", "xlsx"), "choose one of: csv, json, html"),
        (("active", "--on", "2099-01-01", "--record"), "has not ended yet"),
    ):
        code, _out, err = await _tessera(settings, tmp_path, "report", *args)
        assert code != 0, args
        assert message in err, (args, err)


async def test_the_checks_name_a_broken_template_and_a_schedules_unknown_format(
    settings: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config)
    (config / "reports" / "erp_lines.csv.j2").write_text("{% for row in rows %}\n{{ row.row_id | nosuchfilter }}\n")
    code, _out, err = await _tessera(settings, tmp_path, "report", "check", config=config)
    assert code == 2
    assert "erp_lines.csv.j2, line 2" in err
    code, _out, err = await _tessera(settings, tmp_path, "workflows", "check", config=config)
    assert code == 2
    assert "erp_lines.csv.j2, line 2" in err
    (config / "reports" / "erp_lines.csv.j2").unlink()
    workflows = config / "workflows.yaml"
    text = workflows.read_text().replace("      format: csv                           # csv |", "      format: xlsx  #")
    workflows.write_text(text)
    code, _out, err = await _tessera(settings, tmp_path, "workflows", "check", config=config)
    assert code == 2
    line = next(n for n, content in enumerate(text.splitlines(), start=1) if "format: xlsx" in content)
    assert f"workflows.yaml:{line}" in err
    assert "no report format 'xlsx'" in err
    workflows.write_text(text.replace("format: xlsx", "format: csv").replace("day: 3 ", "day: 32"))
    code, _out, err = await _tessera(settings, tmp_path, "workflows", "check", config=config)
    assert code == 2
    assert "report.schedules.renewals.day: Input should be less than or equal to 31" in err
