"""Admin commands on the configured database, no server needed: accounts and API keys.

Each runs in one transaction, like a request.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from wafile.cli.common import clock, err, errors_to_exit, out, run, session, settings_for, when
from wafile.core.accounts import ApiKey
from wafile.services.accounts import accounts
from wafile.services.api_keys import api_keys

__all__ = ["accounts_app", "keys_app"]

accounts_app = typer.Typer(help="Accounts (tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


@accounts_app.command("create")
@errors_to_exit
def accounts_create(name: Annotated[str, typer.Argument(help="Unique account name.")]) -> None:
    """Create an account."""
    settings = settings_for()

    async def work() -> None:
        async with session(settings) as unit:
            account = await accounts.create(unit, name, now=clock.now())
        out.print(f"created account {account.name} ({account.id})", highlight=False)

    run(work())


@accounts_app.command("list")
@errors_to_exit
def accounts_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List accounts."""
    settings = settings_for()

    async def work() -> None:
        async with session(settings) as unit:
            found = await accounts.list_all(unit)
        if as_json:
            for a in found:
                print(
                    json.dumps({"id": a.id, "name": a.name, "created_at": a.created_at.isoformat()})
                )
            return
        table = Table("name", "id", "created")
        for a in found:
            table.add_row(a.name, a.id, when(a.created_at))
        out.print(table)

    run(work())


@keys_app.command("create")
@errors_to_exit
def keys_create(
    account: Annotated[str, typer.Option("--account", help="Account the key acts for.")],
    name: Annotated[str, typer.Option(help="A label to recognise the key by.")] = "",
) -> None:
    """Create an API key. The key is printed once, alone on the last line of stdout."""
    settings = settings_for()

    async def work() -> None:
        async with session(settings) as unit:
            created = await api_keys.create(unit, account_name=account, name=name, now=clock.now())
        err.print(
            f"created key {created.key.prefix} for account {created.key.account_name}; "
            "it is shown only now, store it safely:",
            highlight=False,
        )
        print(created.plaintext, flush=True)

    run(work())


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
@errors_to_exit
def keys_list(
    account: Annotated[str | None, typer.Option("--account", help="Only this account.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List API keys (prefix, name, created, last used, revoked); never the secret."""
    settings = settings_for()

    async def work() -> None:
        async with session(settings) as unit:
            found = await api_keys.list_keys(unit, account_name=account)
        if as_json:
            for k in found:
                print(_key_json(k))
            return
        table = Table("prefix", "account", "name", "created", "last used", "status")
        for k in found:
            status = f"revoked {when(k.revoked_at)}" if k.revoked_at else "active"
            table.add_row(
                k.prefix, k.account_name, k.name, when(k.created_at), when(k.last_used_at), status
            )
        out.print(table)

    run(work())


@keys_app.command("revoke")
@errors_to_exit
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's prefix (wfk_<id>) as `keys list` shows.")],
) -> None:
    """Revoke an API key: requests with it get 401 from now on."""
    settings = settings_for()

    async def work() -> None:
        async with session(settings) as unit:
            revoked = await api_keys.revoke(unit, key, now=clock.now())
        out.print(f"revoked {revoked.prefix} (account {revoked.account_name})", highlight=False)

    run(work())
