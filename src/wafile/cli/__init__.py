"""The `wafile` command: serve, migrate, and the admin and media commands.

Errors print one line on stderr and exit non-zero: 2 for configuration, 1 for
everything else.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from wafile import __version__
from wafile.cli.admin import accounts_app, keys_app
from wafile.cli.common import (
    clock,
    engine,
    err,
    errors_to_exit,
    out,
    run,
    session,
    settings_for,
    settle_heap,
)
from wafile.cli.emulator import emulator_app
from wafile.cli.media import media_app
from wafile.cli.send import send
from wafile.cli.senders import senders_app
from wafile.cli.webhooks import webhooks_app
from wafile.cli.worker import worker
from wafile.config import Settings
from wafile.core.hosts import is_loopback
from wafile.crypto import Sealer
from wafile.db import migrate as migrations
from wafile.db.engine import safe_url
from wafile.errors import ConfigError
from wafile.services.api_keys import CreatedKey
from wafile.services.sandbox import SANDBOX_ACCOUNT, ensure_sandbox, ensure_sandbox_sender

__all__ = ["app", "main"]

app = typer.Typer(
    name="wafile",
    help="Send files over WhatsApp with SMS fallback. Settings come from WAFILE_* "
    "variables or a .env file (see docs/configuration.md).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(media_app, name="media")
app.add_typer(senders_app, name="senders")
app.add_typer(emulator_app, name="emulator")
app.add_typer(webhooks_app, name="webhooks")
app.command()(worker)
app.command()(send)


@app.command()
def version() -> None:
    """Print wafile's version."""
    print(__version__)


@app.command()
@errors_to_exit
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [WAFILE_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [WAFILE_PORT].")] = None,
) -> None:
    """Run the API server (migrates the embedded SQLite database first)."""
    import uvicorn

    from wafile.api.app import create_app

    settings = settings_for(host=host, port=port)
    if settings.sandbox and not is_loopback(settings.host):
        err.print(
            f"[yellow]warning:[/yellow] sandbox mode on {settings.host}: the emulators' "
            "control APIs under /_emulator/ have no authentication. Keep a sandbox on "
            "127.0.0.1, or set WAFILE_SANDBOX=false.",
            highlight=False,
        )
    created = run(_prepare_serve(settings))
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
    application = create_app(settings)
    settle_heap()
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    uvicorn.Server(config).run()


async def _prepare_serve(settings: Settings) -> CreatedKey | None:
    async with session(settings) as unit:
        if not settings.sandbox:
            return None
        created = await ensure_sandbox(unit, now=clock.now())
        await ensure_sandbox_sender(
            unit,
            Sealer(settings.secret_key),
            secret_key=settings.secret_key,
            public_url=settings.effective_public_url,
            now=clock.now(),
        )
    if created is None:
        err.print(
            f"sandbox mode: account '{SANDBOX_ACCOUNT}' exists; its key was shown on first "
            f"start. New key: wafile keys create --account {SANDBOX_ACCOUNT}",
            highlight=False,
        )
    return created


@app.command()
@errors_to_exit
def migrate(
    revision: Annotated[str, typer.Option(help="Revision to upgrade to.")] = "head",
    downgrade: Annotated[
        str | None, typer.Option(help="Downgrade to this revision instead ('base' = empty).")
    ] = None,
) -> None:
    """Apply the database migrations (SQLite or PostgreSQL)."""
    settings = settings_for()

    async def work() -> tuple[str | None, str | None]:
        async with engine(settings) as db:
            before = await migrations.current_revision(db)
            if downgrade is not None:
                await migrations.downgrade(db, downgrade)
            else:
                await migrations.upgrade(db, revision)
            return before, await migrations.current_revision(db)

    before, after = run(work())
    where = safe_url(settings.effective_database_url)
    if before == after:
        out.print(f"{where}: already at {after or 'base'}", highlight=False)
    else:
        out.print(f"{where}: {before or 'base'} -> {after or 'base'}", highlight=False)


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # raised before a command's own handler could run
        err.print(f"[red]error:[/red] {exc.detail}", highlight=False)
        sys.exit(2)
