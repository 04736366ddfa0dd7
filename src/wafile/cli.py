"""The `wafile` command: serve, migrate, and the admin commands.

Admin commands (accounts, keys) work directly on the configured database, no server
needed. Each runs in one transaction, like a request. Errors print one line on stderr
and exit non-zero: 2 for configuration, 1 for everything else.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from wafile import __version__
from wafile.clock import SystemClock
from wafile.config import Settings, load_settings
from wafile.core.accounts import ApiKey
from wafile.db import migrate as migrations
from wafile.db.engine import create_engine, safe_url, session_factory, transaction
from wafile.errors import ConfigError, WafileError
from wafile.logs import setup_logging
from wafile.services.accounts import accounts
from wafile.services.api_keys import CreatedKey, api_keys
from wafile.services.database import prepare_database
from wafile.services.sandbox import SANDBOX_ACCOUNT, ensure_sandbox

__all__ = ["app", "main"]

app = typer.Typer(
    name="wafile",
    help="Send files over WhatsApp with SMS fallback. Settings come from WAFILE_* "
    "variables or a .env file (see docs/configuration.md).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
accounts_app = typer.Typer(help="Accounts (tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
clock = SystemClock()

P = ParamSpec("P")
R = TypeVar("R")


def _errors_to_exit(fn: Callable[P, R]) -> Callable[P, R]:
    """A planned error becomes one line on stderr and an exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except WafileError as exc:
            err.print(f"[red]error:[/red] {exc.detail}", markup=True, highlight=False)
            raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None

    return wrapper


def _settings(**overrides: Any) -> Settings:
    settings = load_settings().with_overrides(**overrides)
    setup_logging(settings.log_level, settings.log_format)
    return settings


def _run(coro: Coroutine[Any, Any, R]) -> R:
    return asyncio.run(coro)


@asynccontextmanager
async def _engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.effective_database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One unit of work on a database whose schema is current (SQLite: migrated)."""
    async with _engine(settings) as engine:
        await prepare_database(engine, settings)
        async with transaction(session_factory(engine)) as session:
            yield session


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "never"


@app.command()
def version() -> None:
    """Print wafile's version."""
    print(__version__)


@app.command()
@_errors_to_exit
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [WAFILE_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [WAFILE_PORT].")] = None,
) -> None:
    """Run the API server (migrates the embedded SQLite database first)."""
    import uvicorn

    from wafile.api.app import create_app

    settings = _settings(host=host, port=port)
    created = _run(_prepare_serve(settings))
    if created is not None:
        url = settings.effective_public_url
        out.print(
            f"\n[bold green]wafile sandbox is ready.[/] An API key for the "
            f"[bold]{SANDBOX_ACCOUNT}[/] account, shown only this once — save it now:\n"
            f"  try: curl -H 'Authorization: Bearer {created.plaintext}' {url}/v1/account\n",
            highlight=False,
            soft_wrap=True,
        )
        print(created.plaintext, flush=True)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    uvicorn.Server(config).run()


async def _prepare_serve(settings: Settings) -> CreatedKey | None:
    async with _session(settings) as session:
        if not settings.sandbox:
            return None
        created = await ensure_sandbox(session, now=clock.now())
    if created is None:
        err.print(
            f"sandbox mode: account '{SANDBOX_ACCOUNT}' exists; its key was shown on first "
            f"start. New key: wafile keys create --account {SANDBOX_ACCOUNT}",
            highlight=False,
        )
    return created


@app.command()
@_errors_to_exit
def migrate(
    revision: Annotated[str, typer.Option(help="Revision to upgrade to.")] = "head",
    downgrade: Annotated[
        str | None, typer.Option(help="Downgrade to this revision instead ('base' = empty).")
    ] = None,
) -> None:
    """Apply the database migrations (SQLite or PostgreSQL)."""
    settings = _settings()

    async def run() -> tuple[str | None, str | None]:
        async with _engine(settings) as engine:
            before = await migrations.current_revision(engine)
            if downgrade is not None:
                await migrations.downgrade(engine, downgrade)
            else:
                await migrations.upgrade(engine, revision)
            return before, await migrations.current_revision(engine)

    before, after = _run(run())
    where = safe_url(settings.effective_database_url)
    if before == after:
        out.print(f"{where}: already at {after or 'base'}", highlight=False)
    else:
        out.print(f"{where}: {before or 'base'} -> {after or 'base'}", highlight=False)


@accounts_app.command("create")
@_errors_to_exit
def accounts_create(name: Annotated[str, typer.Argument(help="Unique account name.")]) -> None:
    """Create an account."""
    settings = _settings()

    async def run() -> None:
        async with _session(settings) as session:
            account = await accounts.create(session, name, now=clock.now())
        out.print(f"created account {account.name} ({account.id})", highlight=False)

    _run(run())


@accounts_app.command("list")
@_errors_to_exit
def accounts_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List accounts."""
    settings = _settings()

    async def run() -> None:
        async with _session(settings) as session:
            found = await accounts.list_all(session)
        if as_json:
            for a in found:
                print(
                    json.dumps({"id": a.id, "name": a.name, "created_at": a.created_at.isoformat()})
                )
            return
        table = Table("name", "id", "created")
        for a in found:
            table.add_row(a.name, a.id, _when(a.created_at))
        out.print(table)

    _run(run())


@keys_app.command("create")
@_errors_to_exit
def keys_create(
    account: Annotated[str, typer.Option("--account", help="Account the key acts for.")],
    name: Annotated[str, typer.Option(help="A label to recognise the key by.")] = "",
) -> None:
    """Create an API key. The key is printed once, alone on the last line of stdout."""
    settings = _settings()

    async def run() -> None:
        async with _session(settings) as session:
            created = await api_keys.create(
                session, account_name=account, name=name, now=clock.now()
            )
        err.print(
            f"created key {created.key.prefix} for account {created.key.account_name}; "
            "it is shown only now, store it safely:",
            highlight=False,
        )
        print(created.plaintext, flush=True)

    _run(run())


def _key_json(k: ApiKey) -> str:
    return json.dumps(
        {
            "id": k.id,
            "prefix": k.prefix,
            "account": k.account_name,
            "name": k.name,
            "created_at": k.created_at.isoformat(),
            "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        }
    )


@keys_app.command("list")
@_errors_to_exit
def keys_list(
    account: Annotated[str | None, typer.Option("--account", help="Only this account.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List API keys (prefix, name, created, last used, revoked); never the secret."""
    settings = _settings()

    async def run() -> None:
        async with _session(settings) as session:
            found = await api_keys.list_keys(session, account_name=account)
        if as_json:
            for k in found:
                print(_key_json(k))
            return
        table = Table("prefix", "account", "name", "created", "last used", "status")
        for k in found:
            status = f"revoked {_when(k.revoked_at)}" if k.revoked_at else "active"
            table.add_row(
                k.prefix, k.account_name, k.name, _when(k.created_at), _when(k.last_used_at), status
            )
        out.print(table)

    _run(run())


@keys_app.command("revoke")
@_errors_to_exit
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's prefix (wfk_<id>) as `keys list` shows.")],
) -> None:
    """Revoke an API key: requests with it get 401 from now on."""
    settings = _settings()

    async def run() -> None:
        async with _session(settings) as session:
            revoked = await api_keys.revoke(session, key, now=clock.now())
        out.print(f"revoked {revoked.prefix} (account {revoked.account_name})", highlight=False)

    _run(run())


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # raised before a command's own handler could run
        err.print(f"[red]error:[/red] {exc.detail}", highlight=False)
        sys.exit(2)
