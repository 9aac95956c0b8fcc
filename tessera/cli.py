"""The `tessera` command: run the system or its parts, and check and load what analysts edit."""

from __future__ import annotations

import asyncio
import logging
import uuid
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tessera.errors import ConfigError, TesseraError
from tessera.reports.cli import report_app
from tessera.settings import Settings, get_settings, write_private_file

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from tessera.catalog.schema import Price, SubscriptionTerms

app = typer.Typer(
    help="Tessera license portal.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
)
catalog_app = typer.Typer(help="The product catalog.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(report_app, name="report")


def _fail(error: Exception, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code)


def _logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def dev() -> None:
    """Start everything on this machine: Temporal dev server + UI, database, worker and API."""
    from tessera.devstack import DevError, run_dev

    settings = get_settings()
    try:
        code = run_dev(settings, prepare=_prepare_dev, echo=typer.echo)
    except (DevError, TesseraError) as error:
        raise _fail(error) from None
    raise typer.Exit(code)


def _prepare_dev(settings: Settings) -> None:
    """Migrate, load the catalog and bootstrap the vendor; print the admin key the first time only."""
    from tessera.db import migrate
    from tessera.processes.startup import load_configured_workflows

    config = load_configured_workflows(settings)
    typer.echo(f"workflows: {settings.config_dir / 'workflows.yaml'} ok (version {config.version_hash()[:12]})")
    migrate(settings.resolved_database_url)
    summary, token, password_link = asyncio.run(_load_and_bootstrap(settings, new_key=False, portal_link=True))
    typer.echo(f"catalog: {summary}")
    key_file = settings.var_dir / "admin-key"
    if token is not None:
        write_private_file(key_file, token)
        typer.echo(f"Admin API key (shown once, also in {key_file}): {token}")
    else:
        typer.echo(f"Admin API key: see {key_file} (or `tessera bootstrap --new-key`)")
    if password_link is not None:
        # The admin has no password yet: this link (an invitation to the vendor, also in the outbox) sets it.
        typer.echo(f"Admin portal password (set it once): {password_link}")


async def _load_and_bootstrap(
    settings: Settings, *, new_key: bool, portal_link: bool = False
) -> tuple[str, str | None, str | None]:
    from tessera.bootstrap import ensure_vendor
    from tessera.catalog.loader import load_catalog, read_catalog
    from tessera.catalog.schema import VendorSpec
    from tessera.db import create_engine, create_session_factory, unit_of_work

    engine = create_engine(settings.resolved_database_url)
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            summary = await load_catalog(session, settings.catalog_file)
            vendor = read_catalog(settings.catalog_file).vendor or VendorSpec(name="Vendor")
            booted = await ensure_vendor(session, settings.resolved_secret_key(), vendor, issue_key=new_key)
            link = None
            if portal_link and booted.new_token is not None and booted.admin.password_hash is None:
                link = await _admin_password_link(session, settings, booted.admin.email, booted.vendor.id)
        return summary.describe(), booted.new_token, link
    finally:
        await engine.dispose()


@app.command()
def worker() -> None:
    """Run a worker for every Tessera workflow and activity (TESSERA_TEMPORAL_ADDRESS, TESSERA_DATABASE_URL)."""
    from workflows.worker import run_worker

    settings = get_settings()
    _logging(settings)
    try:
        asyncio.run(run_worker(settings))
    except ConfigError as error:
        raise _fail(error, code=2) from None


@app.command()
def api() -> None:
    """Serve the HTTP API on TESSERA_API_HOST:TESSERA_API_PORT."""
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    _logging(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level,
        access_log=False,
    )


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (safe to run any number of times)."""
    from tessera.db import migrate as run_migrations

    run_migrations(get_settings().resolved_database_url)
    typer.echo("database is up to date")


@app.command()
def bootstrap(
    new_key: Annotated[bool, typer.Option("--new-key", help="Issue another API key for the vendor admin.")] = False,
) -> None:
    """Create the vendor organization and its administrator from catalog.yaml's `vendor:` section."""
    settings = get_settings()
    try:
        _summary, token, _link = asyncio.run(_load_and_bootstrap(settings, new_key=new_key))
    except TesseraError as error:
        raise _fail(error) from None
    typer.echo(f"admin API key (shown once): {token}" if token else "vendor exists already; nothing changed")


@catalog_app.command("load")
def catalog_load(
    file: Annotated[Path | None, typer.Argument(help="Catalog file; default: config/catalog.yaml.")] = None,
) -> None:
    """Load a catalog file: all or nothing; loading the same file twice changes nothing."""
    from tessera.catalog.loader import load_catalog
    from tessera.db import create_engine, create_session_factory, unit_of_work

    settings = get_settings()
    path = file or settings.catalog_file

    async def load() -> str:
        engine = create_engine(settings.resolved_database_url)
        try:
            async with unit_of_work(create_session_factory(engine)) as session:
                return (await load_catalog(session, path)).describe()
        finally:
            await engine.dispose()

    try:
        typer.echo(asyncio.run(load()))
    except ConfigError as error:
        raise _fail(error, code=2) from None


@catalog_app.command("check")
def catalog_check(
    file: Annotated[Path | None, typer.Argument(help="Catalog file; default: config/catalog.yaml.")] = None,
) -> None:
    """Validate a catalog file without touching the database."""
    from tessera.catalog.loader import read_catalog

    path = file or get_settings().catalog_file
    try:
        catalog = read_catalog(path, known_groups=None)
    except ConfigError as error:
        raise _fail(error, code=2) from None
    typer.echo(f"ok: {len(catalog.product_groups)} product groups, {len(catalog.products)} products")


class TermsFormat(StrEnum):
    table = "table"
    json = "json"


# Which option sets which catalog key, so that a rejected setting is reported by the option's name.
_TERMS_OPTIONS = {
    "term": "--term",
    "notice_period": "--notice",
    "alignment": "--align",
    "fiscal_year_start": "--fiscal-start",
    "first_term": "--first-term",
    "cutoff_days": "--cutoff-days",
    "amount": "--price",
    "currency": "--currency",
}


@app.command()
def terms(
    start: Annotated[
        str, typer.Option(help="First day (YYYY-MM-DD): the anchor date for anniversary terms, else the start.")
    ],
    term: Annotated[str | None, typer.Option(help="Term length, ISO 8601: P1Y, P1M, P90D, …; default P1Y.")] = None,
    notice: Annotated[str | None, typer.Option(help="Notice period, ISO 8601: P3M, P30D, …; default P1M.")] = None,
    count: Annotated[int, typer.Option(min=1, max=600, help="How many terms to list (1-600).")] = 5,
    align: Annotated[
        str | None, typer.Option(help="anniversary | calendar_year | fiscal_year; default anniversary.")
    ] = None,
    fiscal_start: Annotated[str | None, typer.Option(help="Fiscal year start as MM-DD (day 1-28).")] = None,
    first_term: Annotated[
        str | None, typer.Option(help="Partial first term: prorate | free | full; default prorate.")
    ] = None,
    cutoff_days: Annotated[
        int | None, typer.Option(help="A start this many days or fewer before a boundary runs to the next one.")
    ] = None,
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of the subscription.")] = "UTC",
    price: Annotated[str | None, typer.Option(help="Price per term as a decimal, e.g. 1200.00.")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 currency of --price, e.g. EUR.")] = None,
    product: Annotated[
        str | None, typer.Option(help="Take term settings and price from this product of the catalog.")
    ] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Catalog file for --product; default: <config_dir>/catalog.yaml.")
    ] = None,
    output: Annotated[TermsFormat, typer.Option("--format", help="table or json.")] = TermsFormat.table,
) -> None:
    """Print the terms a subscription configuration gives: days, UTC end, last day to cancel and price."""
    from datetime import date
    from decimal import Decimal

    from pydantic import ValidationError

    from tessera.catalog.schema import MonthDay, Price, SubscriptionTerms
    from tessera.subscriptions.listing import as_json, table
    from tessera.subscriptions.terms import TermPlan
    from tessera.timezones import check_timezone

    def bad(option: str, message: str) -> typer.BadParameter:
        return typer.BadParameter(message, param_hint=f"'{option}'")

    def first_problem(error: ValidationError, fallback: str) -> typer.BadParameter:
        problem = error.errors()[0]
        key = next((str(part) for part in problem["loc"] if str(part) in _TERMS_OPTIONS), None)
        message = problem["msg"].removeprefix("Value error, ")
        return bad(_TERMS_OPTIONS.get(key or "", fallback), message)

    try:
        first_day = date.fromisoformat(start)
    except ValueError:
        raise bad("--start", f"{start!r} is not a date; write YYYY-MM-DD, e.g. 2026-03-15") from None
    try:
        check_timezone(tz)
    except ValueError as error:
        raise bad("--tz", str(error)) from None
    given = {
        "--term": term,
        "--notice": notice,
        "--align": align,
        "--fiscal-start": fiscal_start,
        "--first-term": first_term,
        "--cutoff-days": cutoff_days,
        "--price": price,
        "--currency": currency,
    }
    if product is not None:
        mixed = [option for option, value in given.items() if value is not None]
        if mixed:
            raise bad(mixed[0], "the settings come from --product; leave this option out or drop --product")
        settings, price_spec = _product_terms(product, catalog)
    else:
        if catalog is not None:
            raise bad("--catalog", "only used with --product")
        values: dict[str, object] = {
            "term": term,
            "notice_period": notice,
            "alignment": align,
            "first_term": first_term,
            "cutoff_days": cutoff_days,
        }
        if fiscal_start is not None:
            parts = fiscal_start.split("-")
            if len(parts) != 2 or not all(part.isdigit() for part in parts):
                raise bad("--fiscal-start", f"{fiscal_start!r} is not MM-DD, e.g. 04-01")
            try:
                values["fiscal_year_start"] = MonthDay(month=int(parts[0]), day=int(parts[1]))
            except ValidationError as error:
                raise first_problem(error, "--fiscal-start") from None
        if align == "fiscal_year" and fiscal_start is None:
            raise bad(
                "--fiscal-start", "fiscal_year alignment needs the fiscal year's start, e.g. --fiscal-start 04-01"
            )
        if fiscal_start is not None and align != "fiscal_year":
            raise bad("--fiscal-start", "only used with --align fiscal_year")
        try:
            settings = SubscriptionTerms.model_validate(
                {key: value for key, value in values.items() if value is not None}
            )
        except ValidationError as error:
            # The only check across keys left is the notice period against the term.
            raise first_problem(error, "--notice") from None
        if (price is None) != (currency is None):
            raise bad("--currency" if currency is None else "--price", "--price and --currency go together")
        try:
            price_spec = None if price is None else Price(amount=price, currency=currency or "")
        except ValidationError as error:
            raise first_problem(error, "--price") from None
    plan = TermPlan(
        settings=settings,
        start=first_day,
        timezone=tz,
        price=None if price_spec is None else Decimal(price_spec.amount),
        currency=None if price_spec is None else price_spec.currency,
    )
    try:
        listed = list(plan.terms(count))
    except ValueError as error:
        raise bad("--count", str(error)) from None
    typer.echo(as_json(plan, listed) if output == TermsFormat.json else table(plan, listed))


def _product_terms(code: str, catalog: Path | None) -> tuple[SubscriptionTerms, Price | None]:
    """The subscription settings and price of one product of a catalog file."""
    from tessera.catalog.loader import read_catalog

    path = catalog or get_settings().catalog_file
    try:
        document = read_catalog(path, known_groups=None)
    except ConfigError as error:
        raise _fail(error, code=2) from None
    found = next((spec for spec in document.products if spec.code == code), None)
    if found is None:
        known = ", ".join(spec.code for spec in document.products if spec.subscription is not None) or "none"
        raise typer.BadParameter(
            f"no product {code!r} in {path} (subscription products: {known})", param_hint="'--product'"
        )
    if found.subscription is None:
        raise typer.BadParameter(f"{code!r} is a {found.kind} product, not a subscription", param_hint="'--product'")
    return found.subscription, found.price


workflows_app = typer.Typer(help="The process steps in workflows.yaml.", no_args_is_help=True)
app.add_typer(workflows_app, name="workflows")


@workflows_app.command("check")
def workflows_check(
    file: Annotated[Path | None, typer.Argument(help="Workflows file; default: <config_dir>/workflows.yaml.")] = None,
    templates: Annotated[
        Path | None, typer.Option(help="Notification templates; default: <config_dir>/templates.")
    ] = None,
    catalog: Annotated[
        Path | None,
        typer.Option(help="Catalog that overrides may name products of; default: <config_dir>/catalog.yaml."),
    ] = None,
    no_catalog: Annotated[bool, typer.Option("--no-catalog", help="Do not check overrides against a catalog.")] = False,
) -> None:
    """Validate a workflows file and print each process's steps in words (exit code 2 on errors)."""
    from tessera.catalog.loader import read_catalog
    from tessera.processes import CatalogCodes, load_workflows
    from tessera.reports.cli import describe_schedules, report_problems

    config_dir = get_settings().config_dir
    path = file or config_dir / "workflows.yaml"
    catalog_path = catalog or config_dir / "catalog.yaml"
    try:
        # Without a catalog an override naming a misspelt product group would silently match nothing.
        use_catalog = not no_catalog and (catalog is not None or catalog_path.exists())
        codes = CatalogCodes.from_catalog(read_catalog(catalog_path)) if use_catalog else None
        config = load_workflows(path, templates or config_dir / "templates", codes)
    except ConfigError as error:
        raise _fail(error, code=2) from None
    report_problems(config_dir / "reports")
    typer.echo(f"ok: {path} (version {config.version_hash()[:12]})")
    typer.echo(f"languages: {', '.join(_languages(templates or config_dir / 'templates'))} (each translation checked)")
    for line in config.describe():
        typer.echo(line)
    for line in describe_schedules(config.report.schedules):
        typer.echo(line)


def _languages(templates: Path) -> list[str]:
    from tessera.email.locales import DEFAULT_LOCALE, is_locale_folder

    try:
        folders = sorted(entry.name for entry in templates.iterdir() if entry.is_dir() and is_locale_folder(entry.name))
    except OSError:
        folders = []
    return [f"{DEFAULT_LOCALE} (default)", *folders]


orders_app = typer.Typer(help="License orders.", no_args_is_help=True)
app.add_typer(orders_app, name="orders")


@orders_app.command("resume")
def orders_resume() -> None:
    """Start the workflow of every order stored while Temporal was unreachable (safe to repeat)."""
    from workflows.client_ops import resume_orders

    settings = get_settings()
    _logging(settings)
    try:
        started = asyncio.run(resume_orders(settings))
    except (TesseraError, RuntimeError) as error:
        raise _fail(error) from None
    typer.echo(f"started {started} order workflow(s)" if started else "every order's workflow runs already")


@app.command()
def check() -> None:
    """Run a workflow through Temporal and the worker against the database, and print what it saw."""
    from workflows.client_ops import run_system_check

    try:
        result = asyncio.run(run_system_check(get_settings()))
    except Exception as error:
        raise _fail(error) from None
    typer.echo(result.model_dump_json(indent=2))


users_app = typer.Typer(help="People: invitations into organizations.", no_args_is_help=True)
app.add_typer(users_app, name="users")


class InvitedRole(StrEnum):
    admin = "admin"
    member = "member"


@users_app.command("invite")
def users_invite(
    email: Annotated[str, typer.Argument(help="The address to invite.")],
    organization: Annotated[
        str | None, typer.Option("--organization", help="Organization id to join; none: an account only.")
    ] = None,
    role: Annotated[InvitedRole, typer.Option(help="Role in the organization.")] = InvitedRole.member,
    name: Annotated[str, typer.Option(help="The person's name, shown until they set their own.")] = "",
) -> None:
    """Invite someone: queues the message in the outbox and prints the one-time link (works once, expires)."""
    settings = get_settings()
    try:
        organization_id = uuid.UUID(organization) if organization else None
    except ValueError:
        raise _fail(ValueError(f"--organization: {organization!r} is not an organization id")) from None
    try:
        link, expires_at = asyncio.run(_invite(settings, email, organization_id, role.value, name))
    except TesseraError as error:
        raise _fail(error) from None
    typer.echo(f"invitation for {email} (valid until {expires_at}): {link}")


async def _admin_password_link(session: AsyncSession, settings: Settings, email: str, vendor_id: uuid.UUID) -> str:
    from tessera.auth.invitations import InvitationPolicy, invitation_link, invite_as_operator
    from tessera.models import Role

    policy = InvitationPolicy.from_settings(settings)
    _invitation, token = await invite_as_operator(
        session, policy, email=email, organization_id=vendor_id, role=Role.admin
    )
    return invitation_link(policy, token)


async def _invite(
    settings: Settings, email: str, organization_id: uuid.UUID | None, role: str, name: str
) -> tuple[str, str]:
    from tessera.auth.invitations import InvitationPolicy, invitation_link, invite_as_operator
    from tessera.db import create_engine, create_session_factory, unit_of_work
    from tessera.models import Role

    policy = InvitationPolicy.from_settings(settings)
    engine = create_engine(settings.resolved_database_url)
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            invitation, token = await invite_as_operator(
                session, policy, email=email, organization_id=organization_id, role=Role(role), name=name
            )
        return invitation_link(policy, token), invitation.expires_at.isoformat(timespec="minutes")
    finally:
        await engine.dispose()


@app.command()
def outbox(
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many messages, newest first (1-200).")] = 20,
) -> None:
    """List the newest e-mail notifications in the outbox, with their text and whether they were sent."""
    from tessera.db import create_engine, create_session_factory
    from tessera.email.outbox import recent_notifications

    settings = get_settings()
    smtp = settings.smtp_server()

    async def read() -> list[str]:
        engine = create_engine(settings.resolved_database_url)
        try:
            async with create_session_factory(engine)() as session:
                messages = await recent_notifications(session, limit, smtp_configured=smtp is not None)
        finally:
            await engine.dispose()
        lines = [f"sent through {smtp.describe()}" if smtp else "no SMTP server configured: messages stay here"]
        for message in messages:
            when = message.created_at.isoformat(timespec="seconds")
            to = ", ".join(message.recipients) or "nobody"
            lines += ["", f"{when}  {message.status}  {message.locale}  to {to}  ({message.id})"]
            if message.detail:
                lines.append(f"  {message.detail}")
            lines.append(f"  Subject: {message.subject}")
            lines += [f"  | {line}" for line in message.body.splitlines()]
        if not messages:
            lines.append("no messages yet")
        return lines

    try:
        for line in asyncio.run(read()):
            typer.echo(line)
    except TesseraError as error:
        raise _fail(error) from None


from tessera.activation.cli import register as register_activation_commands  # noqa: E402

register_activation_commands(app)


def main() -> None:
    from pydantic import ValidationError

    try:
        app()
    except ValidationError as error:
        # A setting that does not validate (TESSERA_SMTP_URL, ...): say which and why, without a traceback.
        typer.echo(f"error: invalid settings: {error}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
