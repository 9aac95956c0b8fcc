"""The `tessera` command: run the system or its parts, and check and load what analysts edit."""

from __future__ import annotations

import asyncio
import logging
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tessera.errors import ConfigError, TesseraError
from tessera.settings import Settings, get_settings, write_private_file

app = typer.Typer(
    help="Tessera license portal.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
)
catalog_app = typer.Typer(help="The product catalog.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


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
    summary, token = asyncio.run(_load_and_bootstrap(settings, new_key=False))
    typer.echo(f"catalog: {summary}")
    key_file = settings.var_dir / "admin-key"
    if token is not None:
        write_private_file(key_file, token)
        typer.echo(f"Admin API key (shown once, also in {key_file}): {token}")
    else:
        typer.echo(f"Admin API key: see {key_file} (or `tessera bootstrap --new-key`)")


async def _load_and_bootstrap(settings: Settings, *, new_key: bool) -> tuple[str, str | None]:
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
        return summary.describe(), booted.new_token
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
        _summary, token = asyncio.run(_load_and_bootstrap(settings, new_key=new_key))
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
    typer.echo(f"ok: {path} (version {config.version_hash()[:12]})")
    for line in config.describe():
        typer.echo(line)


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
