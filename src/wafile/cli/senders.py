"""`wafile senders add|list|remove`: WhatsApp business numbers, on the database directly.

Credentials come from the environment or a hidden prompt, never from an option: an
option would show them to every user of the machine in the process list.
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.table import Table

from wafile.cli.common import clock, err, errors_to_exit, out, run, session, settings_for, when
from wafile.core.senders import (
    DEFAULT_GRAPH_URL,
    DEFAULT_GRAPH_VERSION,
    DEFAULT_MPS,
    Sender,
    WhatsAppSender,
)
from wafile.crypto import Sealer
from wafile.services.accounts import accounts
from wafile.services.senders import senders

__all__ = ["senders_app"]

senders_app = typer.Typer(
    help="WhatsApp senders (business numbers): add, list, remove.", no_args_is_help=True
)
Account = Annotated[str, typer.Option("--account", help="The account the sender belongs to.")]


def _secret(variable: str, prompt: str) -> str:
    value = os.environ.get(variable)
    if value:
        return value
    return str(typer.prompt(f"{prompt} [{variable}]", hide_input=True))


def _as_dict(sender: Sender, public_url: str) -> dict[str, object]:
    w = sender.whatsapp
    return {
        "id": sender.id,
        "name": sender.name,
        "channel": str(sender.channel),
        "phone_number_id": w.phone_number_id,
        "waba_id": w.waba_id,
        "display_phone_number": w.display_phone_number,
        "graph_url": w.graph_url,
        "graph_version": w.graph_version,
        "mps": w.mps,
        "default": sender.is_default,
        "webhook_url": f"{public_url}/webhooks/whatsapp/{sender.id}",
        "created_at": sender.created_at.isoformat(),
    }


@senders_app.command("add")
@errors_to_exit
def add(
    account: Account,
    name: Annotated[str, typer.Option(help="Unique in the account.")],
    phone_number_id: Annotated[str, typer.Option(help="Meta's id of the business number.")],
    waba_id: Annotated[str, typer.Option(help="The WhatsApp Business Account id.")],
    display_number: Annotated[str, typer.Option(help="The number as people see it.")],
    graph_url: Annotated[str, typer.Option(help="The Graph API base URL.")] = DEFAULT_GRAPH_URL,
    graph_version: Annotated[str, typer.Option(help="Graph API version.")] = DEFAULT_GRAPH_VERSION,
    mps: Annotated[int, typer.Option(help="Messages per second.")] = DEFAULT_MPS,
    default: Annotated[
        bool, typer.Option("--default", help="Use when no sender is named.")
    ] = False,
) -> None:
    """Add a sender. Reads the access token, app secret and (optional) verify token from
    WAFILE_SENDER_ACCESS_TOKEN, WAFILE_SENDER_APP_SECRET and WAFILE_SENDER_VERIFY_TOKEN,
    or asks for the first two without echoing them."""
    settings = settings_for()
    access_token = _secret("WAFILE_SENDER_ACCESS_TOKEN", "Access token")
    app_secret = _secret("WAFILE_SENDER_APP_SECRET", "App secret")
    verify_token = os.environ.get("WAFILE_SENDER_VERIFY_TOKEN") or None

    async def work() -> None:
        async with session(settings) as unit:
            owner = await accounts.get_by_name(unit, account)
            created = await senders.add(
                unit,
                Sealer(settings.secret_key),
                account=owner,
                name=name,
                config=WhatsAppSender(
                    phone_number_id=phone_number_id,
                    waba_id=waba_id,
                    display_phone_number=display_number,
                    graph_url=graph_url.rstrip("/"),
                    graph_version=graph_version,
                    mps=mps,
                ),
                access_token=access_token,
                app_secret=app_secret,
                verify_token=verify_token,
                is_default=default,
                now=clock.now(),
            )
        hook = _as_dict(created.sender, settings.effective_public_url)["webhook_url"]
        out.print(
            f"added sender {name} ({created.sender.id}); webhook URL: {hook}", highlight=False
        )
        if created.generated_verify_token:
            err.print("verify token for Meta's webhook set-up (shown only now):", highlight=False)
            print(created.generated_verify_token, flush=True)

    run(work())


@senders_app.command("list")
@errors_to_exit
def list_senders(
    account: Account,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List an account's senders; never their credentials."""
    settings = settings_for()

    async def work() -> list[Sender]:
        async with session(settings) as unit:
            owner = await accounts.get_by_name(unit, account)
            return await senders.list_for(unit, account=owner)

    found = run(work())
    if as_json:
        for s in found:
            print(json.dumps(_as_dict(s, settings.effective_public_url)))
        return
    table = Table("name", "phone number id", "display number", "mps", "default", "created")
    for s in found:
        w = s.whatsapp
        table.add_row(
            s.name,
            w.phone_number_id,
            w.display_phone_number,
            str(w.mps),
            "yes" if s.is_default else "",
            when(s.created_at),
        )
    out.print(table)


@senders_app.command("remove")
@errors_to_exit
def remove(
    account: Account, name: Annotated[str, typer.Argument(help="The sender's name.")]
) -> None:
    """Remove a sender and its stored credentials."""
    settings = settings_for()

    async def work() -> None:
        async with session(settings) as unit:
            owner = await accounts.get_by_name(unit, account)
            await senders.remove(unit, account=owner, name=name)

    run(work())
    out.print(f"removed sender {name}", highlight=False)
