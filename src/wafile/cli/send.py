"""`wafile send FILE --to NUMBER`: upload a file and send it over WhatsApp (then SMS with
`--sms-after`), and with `--wait` follow it live until it is read, delivered or failed."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.text import Text

from wafile.cli.common import err, out, run
from wafile.cli.remote import (
    DEFAULT_URL,
    ApiKeyOpt,
    ServerUrl,
    client,
    progress_bar,
    server_errors,
)

__all__ = ["send"]

FINAL = {"delivered", "read", "failed"}
POLL_SECONDS = 0.5


def send(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The file.")
    ],
    to: Annotated[str, typer.Option("--to", help="The recipient, with country code.")],
    caption: Annotated[str | None, typer.Option(help="Text shown with the file.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Filename the recipient sees.")] = None,
    sender: Annotated[str | None, typer.Option(help="Sender name (default: the default).")] = None,
    template: Annotated[
        str | None, typer.Option(help="Approved template carrying the file (closed window).")
    ] = None,
    sms_after: Annotated[
        float | None,
        typer.Option(
            "--sms-after",
            min=1,
            help="Seconds to wait for WhatsApp delivery before an SMS with a link goes out "
            "(also at once if WhatsApp fails). Default: the account's default plan.",
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the message until it is final.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 120.0,
    url: ServerUrl = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the message as JSON.")] = False,
) -> None:
    """Upload FILE and send it to --to over WhatsApp; prints the message id."""

    async def work() -> dict[str, Any]:
        async with client(url, api_key) as api:
            with progress_bar() as bar:
                task = bar.add_task(f"upload {file.name}", total=file.stat().st_size)
                item = await api.upload(
                    file, filename=name, progress=lambda n: bar.advance(task, n)
                )
            body: dict[str, Any] = {"to": to, "media_id": item["id"]}
            for key, value in (("caption", caption), ("sender", sender)):
                if value is not None:
                    body[key] = value
            if template is not None:
                body["template"] = {"name": template, "parameters": [caption or item["filename"]]}
            if sms_after is not None:
                body["channels"] = [
                    {"channel": "whatsapp", "fallback_time": sms_after},
                    {"channel": "sms"},
                ]
            # One key per invocation: a network retry inside never sends twice.
            message = await api.send_message(body, idempotency_key=secrets.token_hex(16))
            if not wait:
                return message
            # A live line on a terminal; in a pipe or a log, only the final line.
            live = Live(_line(message), console=err, transient=True) if err.is_terminal else None
            if live is not None:
                live.start()
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout
                while message["status"] not in FINAL and loop.time() < deadline:
                    await asyncio.sleep(POLL_SECONDS)
                    message = await api.get_message(message["id"])
                    if live is not None:
                        live.update(_line(message))
            finally:
                if live is not None:
                    live.stop()
            err.print(_line(message))
            return message

    with server_errors(url):
        message = run(work())
    if as_json:
        print(json.dumps(message, ensure_ascii=False))
    else:
        out.print(f"{message['id']} {message['status']}", highlight=False)
    if wait and message["status"] == "failed":
        raise typer.Exit(1)
    if wait and message["status"] not in FINAL:
        err.print(f"still {message['status']} after {timeout:.0f} s", highlight=False)
        raise typer.Exit(1)


def _line(message: dict[str, Any]) -> Text:
    attempts = ", ".join(
        f"{a['channel']}: {a['status']}" + (f" ({a['error_code']})" if a["error_code"] else "")
        for a in message.get("attempts", [])
    )
    reason = f" — {message['reason']}" if message.get("reason") else ""
    # Text, not markup: "[whatsapp: read]" must not be read as a style tag.
    return Text(f"{message['id']}: {message['status']} [{attempts}]{reason}")
