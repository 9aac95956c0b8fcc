"""Settings: the one place that reads the environment (prefix `TESSERA_`)."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from limits import parse_many
from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tessera.auth.keyring import KeyRing
from tessera.email.smtp_url import SmtpServer, parse_smtp_url

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything Tessera can be told from outside; defaults give the embedded single-machine setup."""

    # Inputs stay out of error messages: some settings (the SMTP URL, secret keys) hold passwords.
    model_config = SettingsConfigDict(env_prefix="TESSERA_", extra="ignore", hide_input_in_errors=True)

    var_dir: Path = Field(default=Path("var"), description="Where `tessera dev` keeps its databases and keys.")
    config_dir: Path = Field(default=Path("config"), description="workflows.yaml, catalog.yaml, templates.")
    reports_dir: Path | None = Field(
        default=None, description="Where scheduled billing reports are written; default: `<var_dir>/reports`."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file `<var_dir>/tessera.db`."
    )
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "tessera"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    temporal_port: int = Field(default=7233, ge=1, le=65535, description="`tessera dev`: Temporal frontend.")
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535, description="`tessera dev`: Temporal Web UI.")
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key for keyed hashes and encrypted ticket copies; default: `<var_dir>/secret-key`.",
    )
    previous_secret_keys: SecretStr | None = Field(
        default=None,
        description="Earlier values of the secret key, comma-separated, newest first: what they hashed still "
        "verifies after a rotation; new hashes use `secret_key`.",
    )
    invitation_ttl: timedelta = Field(
        default=timedelta(days=7), gt=timedelta(0), description="How long an invitation link can be redeemed."
    )
    password_min_length: int = Field(default=12, ge=8, le=128, description="Shortest password accepted.")
    sign_in_limit_account: str = Field(
        default="5/minute;20/hour",
        description="Sign-in attempts per e-mail address (`limits` notation); a success clears the count.",
    )
    sign_in_limit_client: str = Field(
        default="30/minute;300/hour", description="Sign-in attempts per client address (`limits` notation)."
    )
    password_reset_ttl: timedelta = Field(
        default=timedelta(hours=1),
        gt=timedelta(0),
        le=timedelta(days=7),
        description="How long a password-reset link works (once); a newer request ends the older links.",
    )
    password_reset_limit_account: str = Field(
        default="3/15 minutes;10/day", description="Password-reset requests per e-mail address (`limits` notation)."
    )
    password_reset_limit_client: str = Field(
        default="10/minute;100/hour", description="Password-reset requests per client address (`limits` notation)."
    )
    portal_session_lifetime: timedelta = Field(
        default=timedelta(hours=12),
        gt=timedelta(0),
        le=timedelta(days=30),
        description="How long a portal sign-in lasts; sign-out and a password change end it earlier.",
    )
    log_level: str = "info"
    portal_url: str = Field(default="http://127.0.0.1:8000", description="Where people sign in; used in messages.")
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body the API reads; larger ones are refused (413)."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins whose browser scripts may call the API (comma-separated); default: none.",
    )

    worker_max_cached_workflows: int = Field(
        default=10_000,
        ge=0,
        le=1_000_000,
        description="Workflows a worker keeps in memory between their tasks; a renewal herd waking at one instant "
        "replays every workflow beyond it from its history.",
    )
    worker_sticky_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long a workflow's next task waits for the worker that has it in memory before any worker "
        "may take it (and replay it).",
    )
    worker_max_local_activities: int = Field(
        default=15,
        ge=1,
        le=1000,
        description="Local activities (short database steps such as a renewal) a worker runs at once; keep it at or "
        "below the database connection pool (SQLite 15, PostgreSQL 30), so a herd waits in the worker's queue "
        "rather than timing out on the pool.",
    )
    smtp_url: SecretStr | None = Field(
        default=None,
        description="Where e-mail goes: smtp://user:pw@host:587?starttls=true or smtps://host:465; "
        "none: messages stay in the outbox.",
    )
    smtp_from: str | None = Field(
        default=None, description="The From of every message, e.g. `Example Software <licenses@example.com>`."
    )
    smtp_ca_file: Path | None = Field(
        default=None, description="PEM file of the CA that signed the SMTP server's certificate (else the system's)."
    )
    dev_outbox: bool = Field(
        default=False, description="Serve the outbox at /dev/outbox to loopback clients (`tessera dev` turns it on)."
    )

    worker_shutdown_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="On SIGTERM, how long a worker lets running activities finish before cancelling them.",
    )

    webhook_allow_http_loopback: bool = Field(
        default=False,
        description="Let webhook endpoints use plain http, and reach loopback addresses (`tessera dev` sets it).",
    )
    webhook_allowed_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list,
        description="Networks (CIDR, comma-separated) webhooks may reach although they are private; default: none.",
    )
    webhook_retry_for: timedelta = Field(
        default=timedelta(days=3),
        gt=timedelta(0),
        description="How long a delivery is retried; an endpoint failing that long without a success is disabled.",
    )
    webhook_retry_base: timedelta = Field(
        default=timedelta(seconds=10), gt=timedelta(0), description="Wait before the first retry; doubles each time."
    )
    webhook_retry_max_interval: timedelta = Field(
        default=timedelta(hours=6), gt=timedelta(0), description="Longest wait between two attempts."
    )
    webhook_retry_after_max: timedelta = Field(
        default=timedelta(hours=1), ge=timedelta(0), description="A receiver's Retry-After is honoured up to this."
    )
    webhook_secret_overlap: timedelta = Field(
        default=timedelta(hours=24),
        ge=timedelta(0),
        description="After a secret rotation, how long deliveries are signed with the old secret too.",
    )
    webhook_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60, description="Connecting to a receiver.")
    webhook_timeout_seconds: float = Field(
        default=15.0, gt=0, le=120, description="A whole webhook attempt: connect, send, read the answer."
    )
    webhook_max_response_bytes: int = Field(
        default=65_536, ge=0, le=1_048_576, description="How much of a receiver's answer is read."
    )
    outbox_relay_interval_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often the worker's outbox relay looks for undispatched events."
    )
    cloud_device_limit: int = Field(
        default=3, ge=1, le=1000, description="How many devices may use one cloud container at a time."
    )
    cloud_access_ttl: timedelta = Field(
        default=timedelta(hours=1),
        ge=timedelta(minutes=1),
        le=timedelta(hours=24),
        description="How long a certificate from a cloud container's access stays valid (minutes to hours).",
    )

    certificate_ttl: timedelta = Field(
        default=timedelta(days=30),
        gt=timedelta(0),
        le=timedelta(days=400),
        description="How long a license certificate is valid before the software must refresh it (its `exp`).",
    )
    certificate_issuer: str | None = Field(
        default=None, max_length=200, description="The certificates' `iss`; default: `portal_url`."
    )
    activation_moves: int = Field(
        default=3, ge=0, le=1000, description="Returns (moves to another container) allowed per ticket and period."
    )
    activation_moves_period: timedelta = Field(
        default=timedelta(days=30), gt=timedelta(0), description="The period `activation_moves` counts in."
    )
    activation_failure_limit_client: str = Field(
        default="10/minute;100/hour",
        description="Failed ticket-code and activation-secret look-ups per client address (`limits` notation).",
    )
    activation_failure_limit_global: str = Field(
        default="300/minute;3000/hour",
        description="Failed ticket-code and activation-secret look-ups from all clients together.",
    )
    rate_limit_url: SecretStr | None = Field(
        default=None,
        description="Where failure counts live when several API processes share them, e.g. redis://host:6379/0; "
        "default: each process's memory.",
    )
    rate_limit_prefix: str = Field(
        default="tessera", min_length=1, max_length=100, description="Prefix of the rate limiter's keys in Redis."
    )
    jwks_max_age_seconds: int = Field(
        default=300, ge=0, le=86_400, description="How long clients may cache /.well-known/jwks.json."
    )

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str | None) -> str | None:
        """Accept plain `postgresql://` and `sqlite://` URLs and pick the async drivers we ship."""
        if url is None:
            return None
        return async_database_url(url)

    @field_validator(
        "sign_in_limit_account",
        "sign_in_limit_client",
        "password_reset_limit_account",
        "password_reset_limit_client",
        "activation_failure_limit_client",
        "activation_failure_limit_global",
    )
    @classmethod
    def _readable_limits(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is no rate limit; write e.g. 5/minute;20/hour") from None
        return value

    @field_validator("rate_limit_url")
    @classmethod
    def _readable_rate_limit_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith(("redis://", "rediss://")):
            # The URL itself is not repeated: it may hold the password.
            raise ValueError("TESSERA_RATE_LIMIT_URL must be a redis:// or rediss:// URL")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _readable_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            try:
                parse_smtp_url(value.get_secret_value())
            except ValueError as error:
                # The URL itself is not repeated: it may hold the password.
                raise ValueError(f"TESSERA_SMTP_URL: {error}") from None
            return value
        return None

    @field_validator("smtp_from")
    @classmethod
    def _readable_from(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from tessera.email.message import parse_from

        try:
            parse_from(value)
        except ValueError as error:
            raise ValueError(f"TESSERA_SMTP_FROM: {error}") from None
        return value.strip()

    @field_validator("smtp_ca_file")
    @classmethod
    def _readable_ca_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"TESSERA_SMTP_CA_FILE: {value} is not a file")
        return value

    @model_validator(mode="after")
    def _from_with_smtp(self) -> Settings:
        if self.smtp_url is not None and self.smtp_from is None:
            raise ValueError("TESSERA_SMTP_URL is set, so TESSERA_SMTP_FROM must say who the messages are from")
        return self

    def smtp_server(self) -> SmtpServer | None:
        """The SMTP server messages are sent through, or None: they stay in the outbox."""
        return None if self.smtp_url is None else parse_smtp_url(self.smtp_url.get_secret_value())

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.var_dir / 'tessera.db').resolve()}"

    @property
    def resolved_reports_dir(self) -> Path:
        return self.reports_dir or self.var_dir / "reports"

    @property
    def catalog_file(self) -> Path:
        return self.config_dir / "catalog.yaml"

    def resolved_secret_key(self) -> KeyRing:
        """The deployment's secrets, newest first; for the embedded setup the newest is created under `var_dir`."""
        previous = []
        if self.previous_secret_keys is not None:
            previous = [part.strip().encode() for part in self.previous_secret_keys.get_secret_value().split(",")]
        if self.secret_key is not None:
            return KeyRing(self.secret_key.get_secret_value().encode(), previous)
        path = self.var_dir / "secret-key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_private_file(path, secrets.token_urlsafe(48))
        return KeyRing(path.read_text().strip().encode(), previous)


def async_database_url(url: str) -> str:
    """Map driverless URLs to the async drivers: psycopg 3 for PostgreSQL, aiosqlite for SQLite."""
    for plain, driver in (
        ("postgresql://", "postgresql+psycopg://"),
        ("postgres://", "postgresql+psycopg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def sync_database_url(url: str) -> str:
    """The same database through a blocking driver, for Alembic."""
    return url.replace("sqlite+aiosqlite://", "sqlite://")


def write_private_file(path: Path, content: str) -> None:
    """Write a secret readable by the owner only (mode 0600), never world-readable even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content + "\n")


@lru_cache
def get_settings() -> Settings:
    return Settings()
