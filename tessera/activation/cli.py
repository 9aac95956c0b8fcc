"""`tessera keys rotate|list`, `tessera verify`, `tessera offline request|apply`: signing keys and certificates
from a shell, and a device's side of offline activation for trying it by hand."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tessera.settings import get_settings, write_private_file

if TYPE_CHECKING:
    from tessera.activation.verify import CertificateRefused, VerifiedCertificate

keys_app = typer.Typer(help="The keys that sign license certificates.", no_args_is_help=True)
offline_app = typer.Typer(help="Offline (file-based) activation, the device's side.", no_args_is_help=True)
DEFAULT_STATE = Path("tessera-device.json")
REQUEST_FORMAT = "tessera-offline-request/1"


@keys_app.command("list")
def keys_list() -> None:
    """List signing keys, newest first, and whether the JWKS publishes them."""
    from tessera.activation.keys import list_signing_keys, published_keys
    from tessera.db import create_engine, create_session_factory

    async def read() -> list[str]:
        engine = create_engine(get_settings().resolved_database_url)
        try:
            async with create_session_factory(engine)() as session:
                every = await list_signing_keys(session)
                published = {key.kid for key in await published_keys(session)}
        finally:
            await engine.dispose()
        lines = [f"{'kid':<44}  gen  created                    retired                    signed until"]
        for key in every:
            retired = key.retired_at.isoformat(timespec="seconds") if key.retired_at else "signs now"
            until = key.signed_until.isoformat(timespec="seconds") if key.signed_until else "-"
            shown = "published" if key.kid in published else "not published"
            created = key.created_at.isoformat(timespec="seconds")
            lines.append(f"{key.kid:<44}  {key.generation:>3}  {created:<25}  {retired:<25}  {until}  {shown}")
        return lines if every else ["no signing key yet: one is created at the first activation"]

    for line in asyncio.run(read()):
        typer.echo(line)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key, which signs from now on; older keys stay published until their certificates expire."""
    from tessera.activation.keys import rotate_signing_key
    from tessera.db import create_engine, create_session_factory, unit_of_work

    async def rotate() -> str:
        settings = get_settings()
        engine = create_engine(settings.resolved_database_url)
        try:
            async with unit_of_work(create_session_factory(engine)) as session:
                key = await rotate_signing_key(session, settings.resolved_secret_key())
                return key.kid
        finally:
            await engine.dispose()

    kid = asyncio.run(rotate())
    typer.echo(f"new signing key {kid}; API processes sign with it within 30 s")


def _read_text(source: str) -> str:
    """A value, `-` for standard input, or a file's content when `source` names a file."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text()
    except (OSError, ValueError):  # not a file's name (a certificate is longer than any file name)
        return source


def load_jwks_text(source: str | None) -> str:
    """The JWKS from a file or a URL; default: this deployment's `/.well-known/jwks.json`."""
    import httpx

    source = source or get_settings().portal_url.rstrip("/") + "/.well-known/jwks.json"
    if source.startswith(("http://", "https://")):
        answer = httpx.get(source, timeout=10)
        answer.raise_for_status()
        return answer.text
    return Path(source).read_text()


def _check(
    certificate: str, jwks: str | None, audience: str | None, *, check_status: bool = True
) -> VerifiedCertificate:
    import httpx

    from tessera.activation.verify import CertificateRefused, Outcome, read_jwks, verify_certificate

    try:
        keys = read_jwks(load_jwks_text(jwks))
    except (OSError, httpx.HTTPError) as error:
        raise CertificateRefused(Outcome.unreadable, f"cannot read the JWKS: {error}") from None
    return verify_certificate(certificate, keys, audience=audience, check_status=check_status)


def _refused(error: CertificateRefused) -> typer.Exit:
    typer.echo(f"refused ({error.outcome.name}): {error}", err=True)
    return typer.Exit(int(error.outcome))


def verify(
    certificate: Annotated[str, typer.Argument(help="The certificate, a file holding it, or - for standard input.")],
    jwks: Annotated[str | None, typer.Option(help="JWKS file or URL; default: this deployment's.")] = None,
    audience: Annotated[str | None, typer.Option(help="The container id it must be issued for.")] = None,
    fingerprint: Annotated[str | None, typer.Option(help="Or: the software container's fingerprint.")] = None,
) -> None:
    """Verify a license certificate and print its license. Exit codes: 0 valid, 2 unreadable, 3 bad signature,
    4 unknown kid, 5 wrong audience, 6 certificate expired, 7 license revoked, 8 license expired."""
    from tessera.activation.verify import CertificateRefused

    if fingerprint is not None:
        audience = f"software:{fingerprint}"
    try:
        verified = _check(_read_text(certificate), jwks, audience)
    except CertificateRefused as error:
        raise _refused(error) from None
    typer.echo(json.dumps({"kid": verified.header["kid"], **verified.claims}, indent=2, sort_keys=True))


# --- offline: the device's side ---------------------------------------------------------------------------------


def _state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def _container(fingerprint: str | None, serial: str | None, state: dict[str, Any]) -> dict[str, str]:
    if fingerprint is not None:
        return {"kind": "software", "fingerprint": fingerprint}
    if serial is not None:
        return {"kind": "dongle", "serial": serial}
    if "container" in state:
        container: dict[str, str] = state["container"]
        return container
    raise typer.BadParameter("name the container: --fingerprint or --serial", param_hint="'--fingerprint'")


def container_id(container: dict[str, str]) -> str:
    value = container.get("fingerprint") or container.get("serial") or container.get("cloud_container_id", "")
    return f"{container['kind']}:{value}"


@offline_app.command("request")
def offline_request(
    out: Annotated[Path, typer.Option(help="Where the request file goes.")] = Path("tessera-request.json"),
    state_file: Annotated[Path, typer.Option("--state", help="The device's state file.")] = DEFAULT_STATE,
    code: Annotated[
        str | None, typer.Option(help="Activate this ticket (else refresh the state's activation).")
    ] = None,
    fingerprint: Annotated[str | None, typer.Option(help="A software container's fingerprint.")] = None,
    serial: Annotated[str | None, typer.Option(help="A dongle's serial number.")] = None,
) -> None:
    """Write a request file to upload from a connected machine (POST /api/v1/activations/offline)."""
    state = _state(state_file)
    container = _container(fingerprint, serial, state)
    nonce = secrets.token_urlsafe(24)
    request: dict[str, Any] = {"format": REQUEST_FORMAT, "container": container, "nonce": nonce}
    if code is not None:
        request["code"] = code
        request["last_seq"] = 0
    elif state.get("activation_id") and state.get("secret"):
        request |= {"activation_id": state["activation_id"], "secret": state["secret"]}
        request["last_seq"] = int(state.get("seq", 0))
    else:
        raise typer.BadParameter("no activation in the state file yet: give the ticket --code", param_hint="'--code'")
    # The request may carry a ticket code or the activation secret: readable by the owner only.
    write_private_file(out, json.dumps(request, indent=2))
    write_private_file(state_file, json.dumps({**state, "container": container, "pending_nonce": nonce}, indent=2))
    typer.echo(f"request written to {out}; upload it, then `tessera offline apply` the answer")


@offline_app.command("apply")
def offline_apply(
    update: Annotated[Path, typer.Argument(help="The update file Tessera answered.")],
    jwks: Annotated[str | None, typer.Option(help="JWKS file or URL; default: this deployment's.")] = None,
    state_file: Annotated[Path, typer.Option("--state", help="The device's state file.")] = DEFAULT_STATE,
) -> None:
    """Verify an update file (signature, container, the pending request's nonce) and store it in the state file."""
    from tessera.activation.verify import CertificateRefused, Outcome

    state = _state(state_file)
    answer = json.loads(update.read_text())
    if "container" not in state or "pending_nonce" not in state:
        raise _refused(CertificateRefused(Outcome.unreadable, "no request pending: run `tessera offline request`"))
    try:
        # Stored whatever status it states: a revoked license must stop working on the device too.
        verified = _check(
            str(answer.get("certificate", "")), jwks, container_id(state["container"]), check_status=False
        )
    except CertificateRefused as error:
        raise _refused(error) from None
    claims = verified.claims
    if claims.get("nonce") != state["pending_nonce"]:
        raise _refused(CertificateRefused(Outcome.unreadable, "this update answers another request (its nonce)"))
    license = claims.get("license", {})
    state = {key: value for key, value in state.items() if key != "pending_nonce"}
    state |= {
        "activation_id": answer.get("activation_id"),
        "secret": answer.get("secret") or state.get("secret"),
        "seq": license.get("seq", state.get("seq", 0)),
        "certificate": answer.get("certificate"),
    }
    write_private_file(state_file, json.dumps(state, indent=2))
    typer.echo(json.dumps(license, indent=2, sort_keys=True))


def register(app: typer.Typer) -> None:
    """Add these commands to the `tessera` command."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(offline_app, name="offline")
    app.command("verify")(verify)
