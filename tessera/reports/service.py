"""Producing a report: the rows of its kind through the writer of its format, hashed while they stream."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tessera.errors import FieldIssue, InvalidInput
from tessera.reports import csv_sql
from tessera.reports.formats import BUILT_IN_WRITERS, CONTENT_TYPES, Batches, Heading, Totals, Writer
from tessera.reports.periods import Period, ReportKind
from tessera.reports.queries import COLUMNS, Scope, active_rows, renewal_rows
from tessera.reports.sellers import Organizations
from tessera.reports.templates import (
    ReportTemplateError,
    check_format,
    compile_format,
    custom_formats,
    format_names,
    render_custom,
)

REPORT_WORK_MEM = "64MB"
"""PostgreSQL's memory per sort or hash of a report (100,000 rows take ~35 MB), for its transaction only."""


@dataclass(frozen=True)
class ReportRequest:
    period: Period
    scope: Scope
    format: str
    report_id: uuid.UUID | None = None
    """A recorded report: its renewal rows are those it recorded, whatever happened since."""

    @property
    def kind(self) -> ReportKind:
        return self.period.kind


@dataclass
class Manifest:
    """What a report file holds, to check an import against: filled in once the file has been streamed."""

    kind: str
    period: str
    first_day: str
    end_day: str
    scope: str
    format: str
    file: str
    report_id: str | None = None
    row_count: int = 0
    totals: list[dict[str, Any]] = field(default_factory=list)
    sha256: str = ""
    size: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "kind": self.kind,
            "period": {"key": self.period, "from": self.first_day, "to": self.end_day},
            "scope": self.scope,
            "format": self.format,
            "file": self.file,
            "row_count": self.row_count,
            "totals": self.totals,
            "sha256": self.sha256,
            "size": self.size,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class PreparedFormat:
    writer: Writer
    extension: str
    in_database: bool = False
    """Built-in CSV: on PostgreSQL the database writes the records (`tessera.reports.csv_sql`)."""

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.extension, "application/octet-stream")


async def prepare_format(reports_dir: Path, name: str) -> PreparedFormat:
    """The writer of a format; a broken template is refused here, before a byte is sent."""
    if name in BUILT_IN_WRITERS:
        writer, extension = BUILT_IN_WRITERS[name]
        return PreparedFormat(writer, extension, in_database=name == "csv")
    found = custom_formats(reports_dir).get(name)
    if found is None:
        choices = ", ".join(format_names(reports_dir))
        raise InvalidInput(f"no report format {name!r}", issues=[FieldIssue("format", f"choose one of: {choices}")])
    await check_format(found)
    template = compile_format(found)

    def custom_writer(heading: Heading, batches: Batches, totals: Totals) -> AsyncIterator[str]:
        return render_custom(template, heading, batches, totals)

    return PreparedFormat(custom_writer, found.extension)


def file_name(request: ReportRequest, extension: str) -> str:
    scope = "" if request.scope.reseller_id is None else f"-{request.scope.reseller_id}"
    return f"{request.kind.value}-{request.period.key}{scope}.{extension}"


def heading_of(request: ReportRequest) -> Heading:
    period = request.period
    return Heading(
        request.kind.value,
        period.key,
        period.first_day.isoformat(),
        period.end_day.isoformat(),
        request.scope.key,
        COLUMNS[request.kind],
    )


async def _rows(session: AsyncSession, request: ReportRequest) -> Batches:
    organizations = await Organizations.load(session)
    if request.kind == ReportKind.renewals:
        rows = renewal_rows(session, request.period, request.scope, organizations, request.report_id)
    else:
        rows = active_rows(session, request.period, request.scope, organizations)
    async for batch in rows:
        yield batch


async def _guarded(chunks: AsyncIterator[str], request: ReportRequest) -> AsyncIterator[str]:
    """A template failing on a real row (the sample rows passed) stops the file with the template's message."""
    try:
        async for chunk in chunks:
            yield chunk
    except TemplateError as error:
        raise ReportTemplateError(
            f"the report format {request.format!r} failed while writing: {error}",
            issues=[FieldIssue("format", str(error))],
        ) from None


async def _writer(
    session: AsyncSession, request: ReportRequest, prepared: PreparedFormat, totals: Totals
) -> AsyncIterator[str]:
    """The format's text; on PostgreSQL one REPEATABLE READ snapshot for every statement of the report."""
    if session.get_bind().dialect.name != "postgresql":
        return prepared.writer(heading_of(request), _rows(session, request), totals)
    connection = await session.connection(
        execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    )
    # A report sorts and hashes every row it reads: with the default 4 MB those spill to disk (external merge).
    await connection.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
    # The rows are streamed through a cursor, which PostgreSQL plans for its first tenth by default (nested loops
    # that start at once); a report reads every row, so plan for all of them.
    await connection.execute(text("SET LOCAL cursor_tuple_fraction = 1"))
    if prepared.in_database:
        return csv_sql.write_csv(
            connection, heading_of(request), request.period, request.scope, request.report_id, totals
        )
    return prepared.writer(heading_of(request), _rows(session, request), totals)


async def stream_report(
    sessions: async_sessionmaker[AsyncSession], request: ReportRequest, prepared: PreparedFormat, manifest: Manifest
) -> AsyncIterator[bytes]:
    """The file's bytes, read in one transaction of its own (a consistent snapshot); `manifest` is complete after."""
    totals = Totals(COLUMNS[request.kind])
    digest = hashlib.sha256()
    size = 0
    async with sessions() as session, session.begin():
        text_chunks = await _writer(session, request, prepared, totals)
        chunks: list[bytes] = []
        pending = 0
        async for piece in _guarded(text_chunks, request):
            data = piece.encode("utf-8")
            digest.update(data)
            size += len(data)
            chunks.append(data)
            pending += len(data)
            if pending >= 64 * 1024:  # many small rows make few large writes
                yield b"".join(chunks)
                chunks, pending = [], 0
        if chunks:
            yield b"".join(chunks)
    manifest.row_count = totals.rows
    manifest.totals = totals.per_currency()
    manifest.sha256 = digest.hexdigest()
    manifest.size = size


def new_manifest(request: ReportRequest, prepared: PreparedFormat) -> Manifest:
    period = request.period
    return Manifest(
        kind=request.kind.value,
        period=period.key,
        first_day=period.first_day.isoformat(),
        end_day=period.end_day.isoformat(),
        scope=request.scope.key,
        format=request.format,
        file=file_name(request, prepared.extension),
        report_id=str(request.report_id) if request.report_id else None,
    )


async def write_report(
    sessions: async_sessionmaker[AsyncSession], request: ReportRequest, prepared: PreparedFormat, path: Path
) -> Manifest:
    """Write the file atomically (a temporary name, then rename) and its manifest beside it."""
    manifest = new_manifest(request, prepared)
    manifest.file = path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("wb") as out:
            async for chunk in stream_report(sessions, request, prepared, manifest):
                out.write(chunk)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    manifest_path = path.with_name(path.name + ".manifest.json")
    manifest_path.write_text(manifest.to_json(), encoding="utf-8")
    return manifest
