"""`tessera report renewals|active|check`: a report's file and manifest on the command line."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from tessera.errors import ConfigError, TesseraError
from tessera.reports.schedule_config import ReportSchedules
from tessera.settings import Settings, get_settings

report_app = typer.Typer(
    help="Billing reports for the ERP: write a report's file and its manifest.", no_args_is_help=True
)

FormatOption = Annotated[str, typer.Option("--format", help="csv, json, html, or a template of config/reports/.")]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="The file to write (and <file>.manifest.json); default: its own name.")
]
ResellerOption = Annotated[str | None, typer.Option("--reseller", help="Only this reseller's rows (its id).")]
RecordOption = Annotated[
    bool,
    typer.Option(
        "--record",
        help="Record the run like a scheduled one (whole vendor, ended periods only): billed renewals are reversed "
        "later if revoked. Written to the reports directory. Without it a run is a preview and records nothing.",
    ),
]


def _fail(message: object, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


class _Progress:
    """Bytes written so far, on stderr, once a run takes longer than a second."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._shown = 0.0

    def update(self, size: int) -> None:
        now = time.monotonic()
        if now - self._started > 1.0 and now - self._shown > 0.2:
            sys.stderr.write(f"\rwriting report: {size / 1_000_000:.1f} MB")
            sys.stderr.flush()
            self._shown = now

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\n")


async def _run(
    settings: Settings,
    kind: str,
    first: date,
    end: date | None,
    format_name: str,
    out: Path | None,
    reseller: uuid.UUID | None,
    record: bool,
) -> str:
    from tessera.db import create_engine, create_session_factory
    from tessera.models import utcnow
    from tessera.reports.periods import ReportKind, active_day, renewal_period
    from tessera.reports.queries import Scope
    from tessera.reports.recording import record_report
    from tessera.reports.sellers import vendor_timezone
    from tessera.reports.service import ReportRequest, file_name, new_manifest, prepare_format, stream_report

    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    formats_dir = settings.config_dir / "reports"
    try:
        async with sessions() as session:
            zone = await vendor_timezone(session)
        if kind == ReportKind.renewals:
            assert end is not None
            period = renewal_period(first, end, zone)
        else:
            period = active_day(first, zone)
        if record:
            if reseller is not None:
                raise TesseraError("--record covers the whole vendor: leave out --reseller")
            recorded = await record_report(sessions, period, format_name, settings.resolved_reports_dir,
                                           formats_dir, utcnow())  # fmt: skip
            state = "recorded" if recorded.created else "recorded before"
            path = settings.resolved_reports_dir / recorded.file
            return f"{state}: report {recorded.report_id}, {recorded.row_count} rows, {path} (sha256 {recorded.sha256})"
        prepared = await prepare_format(formats_dir, format_name)
        request = ReportRequest(period, Scope(reseller), format_name)
        target = out or Path(file_name(request, prepared.extension))
        manifest = new_manifest(request, prepared)
        manifest.file = target.name
        progress = _Progress()
        size = 0
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            with temporary.open("wb") as handle:
                async for chunk in stream_report(sessions, request, prepared, manifest):
                    handle.write(chunk)
                    size += len(chunk)
                    progress.update(size)
            temporary.replace(target)
        finally:
            temporary.unlink(missing_ok=True)
            progress.done()
        target.with_name(target.name + ".manifest.json").write_text(manifest.to_json(), encoding="utf-8")
        return f"{target}: {manifest.row_count} rows, sha256 {manifest.sha256} (a preview: nothing recorded)"
    finally:
        await engine.dispose()


def _day(value: str, option: str) -> date:
    from tessera.reports.periods import within_range

    try:
        return within_range(date.fromisoformat(value))
    except ValueError as error:
        raise _fail(f"{option}: {value!r}: {error}", 2) from None


def _reseller(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        raise _fail(f"--reseller: {value!r} is not an organization id", 2) from None


def _execute(*args: object) -> None:
    try:
        typer.echo(asyncio.run(_run(get_settings(), *args)))  # type: ignore[arg-type]
    except TesseraError as error:
        issues = "; ".join(f"{issue.field}: {issue.message}" for issue in error.issues)
        raise _fail(f"{error.detail}{' (' + issues + ')' if issues else ''}") from None


@report_app.command("renewals")
def renewals(
    month: Annotated[str | None, typer.Option("--month", help="A whole month, YYYY-MM.")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD (with --to).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="The day after the last, YYYY-MM-DD (excluded).")] = None,
    format_name: FormatOption = "csv",
    out: OutOption = None,
    reseller: ResellerOption = None,
    record: RecordOption = False,
) -> None:
    """Renewals to invoice for a month (`--month`) or for [--from, --to), in the vendor's time zone."""
    from tessera.reports.periods import MAX_RENEWAL_DAYS, ReportKind
    from tessera.subscriptions.calendar import add_months

    if month is not None:
        if from_ or to:
            raise _fail("give --month or --from/--to, not both", 2)
        first = _day(f"{month}-01", "--month")
        end = add_months(first, 1)
    elif from_ and to:
        first, end = _day(from_, "--from"), _day(to, "--to")
    else:
        raise _fail("give --month YYYY-MM, or --from and --to", 2)
    if first >= end:
        raise _fail("--to must come after --from", 2)
    if (end - first).days > MAX_RENEWAL_DAYS:
        raise _fail(f"a renewal report covers at most {MAX_RENEWAL_DAYS} days", 2)
    _execute(ReportKind.renewals.value, first, end, format_name, out, _reseller(reseller), record)


@report_app.command("active")
def active(
    on: Annotated[str, typer.Option("--on", help="Day D, YYYY-MM-DD; a day past the month's end: its last day.")],
    format_name: FormatOption = "csv",
    out: OutOption = None,
    reseller: ResellerOption = None,
    record: RecordOption = False,
) -> None:
    """Per reseller, the subscriptions active at local 00:00 of day D, with totals per currency."""
    from tessera.reports.periods import ReportKind, parse_day

    try:
        day = parse_day(on)
    except ValueError as error:
        raise _fail(f"--on: {error}", 2) from None
    _execute(ReportKind.active_subscriptions.value, day, None, format_name, out, _reseller(reseller), record)


@report_app.command("check")
def check(
    directory: Annotated[Path | None, typer.Argument(help="Report templates; default: <config_dir>/reports.")] = None,
) -> None:
    """Compile every report template and render it with sample rows (exit code 2 on errors)."""
    from tessera.reports.templates import format_names, raise_for

    path = directory or get_settings().config_dir / "reports"
    try:
        raise_for(path)
    except ConfigError as error:
        raise _fail(error, 2) from None
    typer.echo(f"ok: {path}; formats: {', '.join(format_names(path))}")


def report_problems(directory: Path) -> None:
    """For `tessera workflows check`: broken report templates fail the check too (exit code 2)."""
    from tessera.reports.templates import raise_for

    try:
        raise_for(directory)
    except ConfigError as error:
        raise _fail(error, 2) from None


def describe_schedules(schedules: ReportSchedules | None) -> list[str]:
    if schedules is None or not schedules.items():
        return ["report schedules: none (reports only on demand)"]
    lines = ["report schedules (vendor's time zone):"]
    for kind, schedule in schedules.items():
        state = " (paused)" if schedule.paused else ""
        lines.append(f"  {kind}: day {schedule.day} at {schedule.time}, format {schedule.format}{state}")
    return lines
