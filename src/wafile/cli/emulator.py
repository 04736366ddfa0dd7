"""`wafile emulator whatsapp|sms`: one emulator alone, serving its routes at the root.

For building and testing against WhatsApp or an SMS provider with no account and no
internet: `http://127.0.0.1:PORT/v23.0/...` stands in for Meta's Graph API. `wafile
serve` in sandbox mode mounts the same emulators under `/_emulator/...` by itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from wafile.cli.common import err, settle_heap
from wafile.emulator.sms import SmsEmulator, create_sms_app
from wafile.emulator.sms import WorldError as SmsWorldError
from wafile.emulator.sms import load_world as load_sms_world
from wafile.emulator.sms import sandbox_world as sms_sandbox_world
from wafile.emulator.whatsapp import (
    WhatsAppEmulator,
    WorldError,
    create_whatsapp_app,
    load_world,
    sandbox_world,
)

__all__ = ["emulator_app"]

emulator_app = typer.Typer(
    help="Run the WhatsApp Cloud API or SMS provider emulator on its own.",
    no_args_is_help=True,
)

Host = Annotated[str, typer.Option(help="Address to listen on.")]
WorldFile = Annotated[
    Path | None,
    typer.Option(
        "--world",
        exists=True,
        dir_okay=False,
        help="World file (YAML or JSON): numbers, phones, templates. Default: a demo world.",
    ),
]

# The demo world's credentials: an emulator on a developer's machine, not a secret.
DEMO_NUMBER, DEMO_TOKEN, DEMO_APP_SECRET, DEMO_VERIFY = "1001", "demo-token", "demo-secret", "vt"
DEMO_SMS_SID, DEMO_SMS_TOKEN, DEMO_SMS_FROM = (
    "AC" + "0" * 31 + "1",
    "demo-auth-token",
    "+15550001000",
)


def _serve(app: Any, host: str, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, server_header=False
    )
    settle_heap()  # a long-running server too (serve's reasons)
    uvicorn.Server(config).run()


@emulator_app.command("whatsapp")
def whatsapp(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 9100,
    host: Host = "127.0.0.1",
    world: WorldFile = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(help="Demo world only: where the number posts its webhooks."),
    ] = None,
) -> None:
    """The WhatsApp Cloud API emulator (see docs/emulator-whatsapp.md)."""
    if world is not None:
        try:
            loaded = load_world(world)
        except WorldError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None
    else:
        loaded = sandbox_world(
            phone_number_id=DEMO_NUMBER,
            access_token=DEMO_TOKEN,
            app_secret=DEMO_APP_SECRET,
            webhook_url=webhook_url,
            verify_token=DEMO_VERIFY,
        )
        err.print(
            f"demo world: phone_number_id {DEMO_NUMBER}, access token {DEMO_TOKEN}, "
            f"app secret {DEMO_APP_SECRET}, verify token {DEMO_VERIFY}",
            highlight=False,
        )
    err.print(
        f"WhatsApp Cloud API emulator on http://{host}:{port}/v23.0/ "
        f"(control API: http://{host}:{port}/_control/world)",
        highlight=False,
    )
    _serve(create_whatsapp_app(WhatsAppEmulator(loaded)), host, port)


@emulator_app.command("sms")
def sms(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 9200,
    host: Host = "127.0.0.1",
    world: WorldFile = None,
) -> None:
    """The SMS provider emulator, Twilio's Messages API shape (see docs/emulator-sms.md)."""
    if world is not None:
        try:
            loaded = load_sms_world(world)
        except SmsWorldError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None
    else:
        loaded = sms_sandbox_world(DEMO_SMS_SID, DEMO_SMS_TOKEN, DEMO_SMS_FROM)
        err.print(
            f"demo world: account SID {DEMO_SMS_SID}, auth token {DEMO_SMS_TOKEN}, "
            f"from {DEMO_SMS_FROM}",
            highlight=False,
        )
    err.print(
        f"SMS emulator on http://{host}:{port}/2010-04-01/Accounts/<sid>/Messages.json "
        f"(control API: http://{host}:{port}/_control/world)",
        highlight=False,
    )
    _serve(create_sms_app(SmsEmulator(loaded)), host, port)
