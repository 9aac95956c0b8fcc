"""Report formats that business analysts add as Jinja2 templates: `config/reports/<format>.<extension>.j2`.

A template sees `report` (kind, period, from, to, scope, columns), `rows` (to loop over once) and `totals`
(`totals.per_currency()`, `totals.per_reseller()`, complete once the rows were looped over), and the filters
`csv` (a list of cells as one defused RFC 4180 record; `delimiter` optional) and `defuse`. It runs in Jinja2's
sandbox with undefined names as errors; `.html`/`.xml` templates are autoescaped. `tessera report check` (and
`tessera workflows check`) compile every template and render it once with a sample row of each report kind.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from tessera.errors import ConfigError, FieldIssue, InvalidInput
from tessera.reports.formats import BUILT_IN, Batches, Heading, Totals, csv_line, defuse, each_row
from tessera.reports.periods import ReportKind
from tessera.reports.queries import COLUMNS
from tessera.reports.sellers import Row

_NAME = re.compile(r"^([a-z][a-z0-9_]{0,62})\.([a-z0-9]{1,8})\.j2$")


class ReportTemplateError(InvalidInput):
    """A report template that does not compile or render: its file and line are named."""

    code = "invalid-report-template"
    title = "Invalid report template"


@dataclass(frozen=True)
class CustomFormat:
    name: str
    extension: str
    path: Path


def _environment(extension: str) -> SandboxedEnvironment:
    environment = SandboxedEnvironment(
        autoescape=extension in ("html", "htm", "xml"),
        enable_async=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["csv"] = lambda cells, delimiter=",": csv_line(cells, delimiter)
    environment.filters["defuse"] = defuse
    return environment


def custom_formats(directory: Path) -> dict[str, CustomFormat]:
    """The templates in `directory`, by format name (the file name before its extension)."""
    if not directory.is_dir():
        return {}
    found: dict[str, CustomFormat] = {}
    for path in sorted(directory.iterdir()):
        match = _NAME.match(path.name)
        if match and match.group(1) not in BUILT_IN:
            found[match.group(1)] = CustomFormat(match.group(1), match.group(2), path)
    return found


def format_names(directory: Path) -> list[str]:
    return [*BUILT_IN, *custom_formats(directory)]


def compile_format(found: CustomFormat) -> Template:
    try:
        return _environment(found.extension).from_string(found.path.read_text(encoding="utf-8"))
    except TemplateSyntaxError as error:
        raise _template_error(found, error) from None


def _template_line(error: BaseException) -> int | None:
    """The template line a rendering error happened on: Jinja2 puts the template's frames into the traceback."""
    line = getattr(error, "lineno", None)
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line if isinstance(line, int) else None


def _template_error(found: CustomFormat, error: TemplateError, line: int | None = None) -> ReportTemplateError:
    line = line or _template_line(error)
    where = f"{found.path.name}, line {line}" if line else found.path.name
    issue = FieldIssue("format", f"report template {where}: {error.message or error}", line=line, file=str(found.path))
    return ReportTemplateError(f"the report template {where} is broken: {error.message or error}", issues=[issue])


def _sample_row(kind: ReportKind) -> Row:
    row = dict.fromkeys(COLUMNS[kind], "")
    row |= {"row_id": "REN-sample-2", "currency": "EUR", "net_amount": "100.00", "unit_price": "100.00",
            "quantity": "1", "term_no": "2", "first_day": "2026-01-01", "valid_through": "2026-12-31"}  # fmt: skip
    return tuple(row[column] for column in COLUMNS[kind])


async def _rows(rows: list[Row]) -> Batches:
    yield rows


async def check_format(found: CustomFormat) -> None:
    """Compile the template and render it with a sample row of each report kind; ReportTemplateError if broken."""
    template = compile_format(found)
    for kind in ReportKind:
        heading = Heading(kind.value, "2026-01", "2026-01-01", "2026-02-01", "all", COLUMNS[kind])
        try:
            async for _chunk in render_custom(template, heading, _rows([_sample_row(kind)]), Totals(COLUMNS[kind])):
                pass
        except TemplateError as error:
            raise _template_error(found, error) from None
        except Exception as error:
            raise _template_error(found, TemplateError(f"{type(error).__name__}: {error}")) from None


async def render_custom(template: Template, heading: Heading, batches: Batches, totals: Totals) -> AsyncIterator[str]:
    context = {"report": heading.as_dict(), "rows": each_row(batches, totals), "totals": totals}
    async for chunk in template.generate_async(context):
        yield chunk


def check_directory(directory: Path) -> list[FieldIssue]:
    """Every problem of the templates in `directory` (for the check commands)."""
    issues: list[FieldIssue] = []
    for found in custom_formats(directory).values():
        try:
            asyncio.run(check_format(found))
        except ReportTemplateError as error:
            issues += error.issues
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if path.suffix == ".j2" and not _NAME.match(path.name):
                message = "name report templates <format>.<extension>.j2, e.g. sap_billing.csv.j2 (lower case)"
                issues.append(FieldIssue("file", message, file=str(path)))
    return issues


def raise_for(directory: Path) -> None:
    issues = check_directory(directory)
    if issues:
        raise ConfigError(f"{len(issues)} problem(s) in the report templates under {directory}", issues=issues)
