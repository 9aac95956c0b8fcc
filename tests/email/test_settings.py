"""TESSERA_SMTP_URL and TESSERA_SMTP_FROM: checked at start, with errors that say how to write them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tessera.email.message import parse_from
from tessera.email.smtp_url import parse_smtp_url
from tessera.settings import Settings


def test_the_documented_forms() -> None:
    server = parse_smtp_url("smtp://user:p%40ss@mail.example.com:587?starttls=true")
    assert (server.host, server.port, server.starttls, server.implicit_tls) == ("mail.example.com", 587, True, False)
    assert (server.username, server.password) == ("user", "p@ss")
    assert "p@ss" not in repr(server)
    assert "p@ss" not in server.describe()
    tls = parse_smtp_url("smtps://relay.example.com")
    assert (tls.port, tls.implicit_tls, tls.starttls, tls.timeout) == (465, True, False, 30.0)
    assert parse_smtp_url("smtp://127.0.0.1").port == 25
    # Credentials in clear are fine to a server on this machine.
    assert parse_smtp_url("smtp://u:p@localhost:1025?timeout=5").timeout == 5.0


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://mail.example.com", "scheme must be smtp or smtps"),
        ("mail.example.com:25", "scheme must be smtp or smtps"),
        ("smtp://", "names no host"),
        ("smtp://mail.example.com:99999", "not an SMTP URL"),
        ("smtp://mail.example.com/inbox", "no path"),
        ("smtp://mail.example.com?tls=1", "unknown option 'tls'"),
        ("smtp://mail.example.com?starttls=maybe", "starttls must be true or false"),
        ("smtp://mail.example.com?starttls=true&starttls=false", "given once"),
        ("smtps://mail.example.com?starttls=true", "smtp:// only"),
        ("smtp://mail.example.com?timeout=0", "timeout must be 1 to 120"),
        ("smtp://mail.example.com?timeout=soon", "timeout must be seconds"),
        ("smtp://:secret@mail.example.com?starttls=true", "needs a user name"),
        ("smtp://user:secret@mail.example.com", "unencrypted"),
    ],
)
def test_a_wrong_url_is_refused_saying_why(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_smtp_url(url)


def test_settings_refuse_a_bad_url_without_repeating_the_password(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(var_dir=tmp_path, smtp_url="smtp://user:hunter2-secret@mail.example.com", smtp_from="a@example.com")
    assert "TESSERA_SMTP_URL" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)


def test_settings_need_a_from_address_with_smtp(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="TESSERA_SMTP_FROM must say"):
        Settings(var_dir=tmp_path, smtp_url="smtp://127.0.0.1:1025")
    with pytest.raises(ValidationError, match="TESSERA_SMTP_FROM"):
        Settings(var_dir=tmp_path, smtp_url="smtp://127.0.0.1:1025", smtp_from="not an address")
    with pytest.raises(ValidationError, match="TESSERA_SMTP_CA_FILE"):
        Settings(var_dir=tmp_path, smtp_ca_file=tmp_path / "missing.pem")
    settings = Settings(var_dir=tmp_path, smtp_url="smtp://127.0.0.1:1025", smtp_from="Vendor <Sales@Example.com>")
    server = settings.smtp_server()
    assert server is not None
    assert server.port == 1025
    assert Settings(var_dir=tmp_path, smtp_url="").smtp_server() is None


def test_from_header_forms() -> None:
    assert parse_from("licenses@example.com").address == "licenses@example.com"
    sender = parse_from('"Example, Software" <Licenses@EXAMPLE.com>')
    assert (sender.name, sender.address, sender.domain) == ("Example, Software", "licenses@example.com", "example.com")
    for bad in ("a@example.com, b@example.com", "Name <>", "x@example.com\r\nBcc: y@example.com"):
        with pytest.raises(ValueError, match=r"address|line breaks"):
            parse_from(bad)
