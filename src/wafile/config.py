"""Settings: read once from the environment (and an optional `.env`), then passed down.

Every option is a `WAFILE_*` variable; docs/configuration.md lists them all. Defaults
serve the embedded case with no configuration: SQLite and media under `./var`, the
built-in emulators (sandbox) and http://127.0.0.1:8000.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wafile.core.callbacks import RETRY_SCHEDULE
from wafile.core.ssrf import Allowlist, parse_allowlist
from wafile.errors import ConfigError

__all__ = ["LogFormat", "Settings", "load_settings"]

SECRET_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
MIN_SECRET_LEN = 32


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


LogLevel = Annotated[str, Field(pattern=r"^(?i:debug|info|warning|error|critical)$")]


# The vendor dialects wafile serves (wafile.api.dialects), by URL prefix.
DIALECT_NAMES = ("insider", "telesign", "99digital", "commbox", "sinch")


class Settings(BaseSettings):
    """All of wafile's options. Build with `load_settings()`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix="WAFILE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    data_dir: Path = Path("./var")
    database_url: str = ""
    # PostgreSQL connections each process keeps, and may open beyond them under load
    # (SQLite always has one). Mind the server's max_connections over all processes.
    database_pool_size: int = Field(default=20, ge=1, le=1000)
    database_max_overflow: int = Field(default=5, ge=0, le=1000)
    media_url: str = ""
    public_url: str = ""
    secret_key: str = Field(default="", repr=False)
    sandbox: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: LogLevel = "info"
    log_format: LogFormat = LogFormat.TEXT
    # Media store
    max_upload_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    media_retention_days: float = Field(default=30, gt=0)
    link_lifetime_seconds: int = Field(default=3600, ge=1, le=366 * 24 * 3600)
    # The signed link in a fallback SMS: people open SMS days later.
    sms_link_lifetime_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=366 * 24 * 3600)
    # Seconds after an SMS is sent (then after each poll) to ask the provider for its
    # status, in case its callbacks were lost; () never polls.
    sms_poll_schedule: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        default=(300.0, 1800.0, 7200.0, 43200.0, 172800.0), max_length=20
    )
    # 0 turns the periodic retention sweep off (run `wafile media sweep` instead).
    sweep_interval_seconds: float = Field(default=3600, ge=0)
    # Job queue and workers (docs/jobs.md)
    embedded_worker: bool = True  # `wafile serve` runs one worker in-process
    worker_concurrency: int = Field(default=10, ge=1, le=1000)
    job_lease_seconds: float = Field(default=60, ge=1)
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=3600)
    worker_grace_seconds: float = Field(default=20, ge=0)
    # `wafile worker` lowers its CPU priority by this much (Unix nice), so that on a
    # machine shared with `wafile serve` the API answers first.
    worker_nice: int = Field(default=0, ge=0, le=19)
    # Customer callbacks (docs/api.md, "Callbacks"): seconds before each automatic
    # attempt, and how long an endpoint may fail without a success before it is failing.
    callback_retry_schedule: tuple[Annotated[float, Field(ge=0)], ...] = Field(
        default=RETRY_SCHEDULE, min_length=1, max_length=50
    )
    callback_failing_after_seconds: float = Field(default=24 * 3600, gt=0)
    # The signed link to a user's file in an `inbound.received` event: it must outlive
    # the event's retries (about three days).
    callback_link_lifetime_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=366 * 24 * 3600)
    callback_allow_loopback_http: bool = False  # always allowed in sandbox mode
    # Outbound requests to client-given URLs (remote files, callbacks): the SSRF guard
    # (docs/configuration.md, "Remote files"). Hosts, `*.suffix`es and CIDRs, comma-separated.
    outbound_allow: str = ""
    outbound_allow_loopback: bool | None = None  # unset: on in sandbox mode, off otherwise
    remote_connect_timeout_seconds: float = Field(default=10, gt=0, le=300)
    remote_read_timeout_seconds: float = Field(default=30, gt=0, le=3600)
    remote_total_timeout_seconds: float = Field(default=300, gt=0, le=24 * 3600)
    remote_max_redirects: int = Field(default=5, ge=0, le=20)
    remote_per_host: int = Field(default=4, ge=1, le=1000)
    remote_retries: int = Field(default=2, ge=0, le=10)
    # Mount this vendor dialect at the root too (docs/dialects.md); "" for none.
    dialect_at_root: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = Field(default="", repr=False)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        # Accept the plain scheme people copy from elsewhere; wafile is async-only.
        for plain, driver in (
            ("sqlite://", "sqlite+aiosqlite://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
        ):
            if value.startswith(plain):
                return driver + value[len(plain) :]
        if value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            return value
        raise ValueError("must be a sqlite:/// or postgresql:// URL")

    @field_validator("media_url")
    @classmethod
    def _media_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("file://", "s3://", "memory://")):
            raise ValueError("must be a file://, s3:// or memory:// URL")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        if value and len(value) < MIN_SECRET_LEN:
            raise ValueError(f"must be at least {MIN_SECRET_LEN} characters")
        return value

    @field_validator("outbound_allow")
    @classmethod
    def _outbound_allow(cls, value: str) -> str:
        parse_allowlist(value)  # ValueError names the bad entry
        return value.strip()

    @field_validator("dialect_at_root")
    @classmethod
    def _dialect_at_root(cls, value: str) -> str:
        value = value.strip().lower()
        if value and value not in DIALECT_NAMES:
            raise ValueError(f"must be one of {', '.join(DIALECT_NAMES)}, or empty")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        return value.upper()

    # Derived values: one place decides what an empty option means.

    @property
    def callback_loopback_ok(self) -> bool:
        """Whether callbacks may go to plain http on this machine (sandbox, local tests)."""
        return self.sandbox or self.callback_allow_loopback_http

    @property
    def outbound_loopback_ok(self) -> bool:
        """Whether client-given URLs may reach this machine (sandbox, local tests)."""
        if self.outbound_allow_loopback is None:
            return self.sandbox
        return self.outbound_allow_loopback

    @property
    def outbound_allowlist(self) -> Allowlist:
        return parse_allowlist(self.outbound_allow)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'wafile.db').resolve()}"

    @property
    def effective_media_url(self) -> str:
        if not self.media_url:
            return (self.data_dir / "media").resolve().as_uri()
        rest = self.media_url.removeprefix("file://")
        if rest != self.media_url and not rest.startswith(("/", "localhost/")):
            # `file://./var/media` or `file://var/media`: relative to the working folder.
            return Path(unquote(rest)).resolve().as_uri()
        return self.media_url

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def media_retention(self) -> timedelta:
        return timedelta(days=self.media_retention_days)

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with CLI overrides (`serve --host/--port`), validated like the rest."""
        given = {k: v for k, v in values.items() if v is not None}
        if not given:
            return self
        merged = self.model_dump() | given
        try:
            return Settings.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    """One line naming the variable, e.g. `WAFILE_PORT: Input should be ...`."""
    parts = []
    for err in exc.errors():
        name = "WAFILE_" + "_".join(str(p) for p in err["loc"]).upper()
        msg = err["msg"].removeprefix("Value error, ")
        # Never echo a secret back, even a malformed one.
        secret = name in {"WAFILE_SECRET_KEY", "WAFILE_S3_SECRET_ACCESS_KEY"}
        shown = "" if secret else f" (got {err.get('input')!r})"
        parts.append(f"{name}: {msg}{shown}")
    return "; ".join(parts)


def load_settings(*, env_file: str | Path | None = ".env", ensure_secret: bool = True) -> Settings:
    """Read the settings; raise `ConfigError` with one clear line on bad input.

    When `WAFILE_SECRET_KEY` is unset, a random key is generated once into
    `<data dir>/secret_key` (mode 0600) and read back on later starts, so signed links
    and encrypted secrets survive restarts.
    """
    try:
        settings = Settings(_env_file=env_file)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    if ensure_secret and not settings.secret_key:
        settings = settings.model_copy(update={"secret_key": _stored_secret(settings.data_dir)})
    return settings


def _stored_secret(data_dir: Path) -> str:
    path = data_dir / SECRET_FILE
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Write aside, then link into place: link() fails if another process won the
            # race, so every process ends up reading the same complete key.
            tmp = data_dir / f".{SECRET_FILE}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48) + "\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        value = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"WAFILE_DATA_DIR: cannot create or read {path.name} in {data_dir}: {exc.strerror}"
        ) from None
    if len(value) < MIN_SECRET_LEN:
        raise ConfigError(
            f"WAFILE_SECRET_KEY: the key stored in {path} is shorter than {MIN_SECRET_LEN} "
            "characters; delete the file to generate a new one"
        )
    return value
