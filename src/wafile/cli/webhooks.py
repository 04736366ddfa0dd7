"""`wafile webhooks listen`: a local callback receiver, the sandbox way to see callbacks.

It verifies each request's Standard Webhooks signature with the `standardwebhooks`
package (the reference library a customer would use) and prints the event: one line
per event, or the raw JSON document with `--json`. A request that does not verify is
answered 401 and reported on stderr, never printed as an event. `--fail-first N`
answers 500 to the first N signed events, to watch wafile's retries.

stdout holds only the events that were accepted (2xx), one per line and flushed at
once, so a pipe or a file shows them as they arrive; everything else goes to stderr.
The secret is never printed.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated, Any

import typer
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from wafile.cli.common import err

__all__ = ["Listener", "event_line", "webhooks_app"]

SECRET_ENV = "WAFILE_WEBHOOK_SECRET"  # noqa: S105 - a variable name, not a secret

webhooks_app = typer.Typer(
    help="Tools for the callbacks wafile sends (see docs/api.md, Callbacks).",
    no_args_is_help=True,
)


class Listener:
    """The receiver's state: the verifier, the failures still to answer, the ids seen."""

    def __init__(self, secret: str, *, as_json: bool, fail_first: int) -> None:
        self._webhook = Webhook(secret)
        self._as_json = as_json
        self._fail_left = fail_first
        self._fail_total = fail_first
        self._seen: set[str] = set()
        self.app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["GET", "POST"])])

    async def _receive(self, request: Request) -> Response:
        if request.method != "POST":  # a browser or a health check
            return PlainTextResponse("wafile webhooks listen: POST signed events here\n")
        body = await request.body()
        who = request.client.host if request.client else "?"
        try:
            self._webhook.verify(body, dict(request.headers), json_parse=False)
        except (WebhookVerificationError, ValueError) as exc:
            # ValueError: a malformed signature header or a body that is not UTF-8.
            _report(f"401 to {who} {request.url.path}: {_why(exc)}")
            return PlainTextResponse("signature verification failed\n", status_code=401)
        event_id = request.headers.get("webhook-id", "?")
        try:
            event = json.loads(body)
            if not isinstance(event, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            _report(f"400 to {who}: {event_id} is signed but its body is not a JSON object")
            return PlainTextResponse("not a JSON object\n", status_code=400)
        if self._fail_left > 0:
            self._fail_left -= 1
            done = self._fail_total - self._fail_left
            _report(
                f"500 on purpose to {event_id} ({event.get('type')}, #{event.get('sequence')}): "
                f"--fail-first {done} of {self._fail_total}"
            )
            return PlainTextResponse("failing on purpose (--fail-first)\n", status_code=500)
        again = event_id in self._seen
        self._seen.add(event_id)
        if self._as_json:
            text = body.decode()  # wafile's bodies are one line; keep any other one to one
            print(json.dumps(event, ensure_ascii=False) if "\n" in text else text, flush=True)
        else:
            print(event_line(event, received=datetime.now(), again=again), flush=True)
        return PlainTextResponse("ok\n")


def event_line(event: dict[str, Any], *, received: datetime, again: bool = False) -> str:
    """One readable line: arrival time, message, sequence, type, what changed (for an
    inbound message: who wrote, and what)."""
    notes = " late" * bool(event.get("late")) + " (again)" * again
    inbound: dict[str, Any] | None = event.get("inbound")
    if inbound is not None:
        said = inbound.get("text") or inbound.get("filename") or inbound.get("type")
        return (
            f"{received:%H:%M:%S.%f}"[:-3]
            + f"  {inbound.get('id', '?')}  {event.get('type')}"
            + f"  {inbound.get('from_number')} -> {event.get('to')}: {said}{notes}"
        )
    message: dict[str, Any] = event.get("message") or {}
    change = f"{event.get('previous') or 'new'} -> {event.get('status')}"
    subject = ""
    if event.get("subject") == "attempt":
        number = event.get("attempt")
        attempts: list[dict[str, Any]] = message.get("attempts") or []
        attempt: dict[str, Any] = next((a for a in attempts if a.get("number") == number), {})
        subject = f" {attempt.get('channel', 'attempt')}#{number}"
        if attempt.get("error_code") is not None:
            change += f" ({attempt['error_code']})"
    return (
        f"{received:%H:%M:%S.%f}"[:-3]
        + f"  {message.get('id', '?')}  #{event.get('sequence')}  {event.get('type')}"
        + f"{subject}  {change}{notes}"
    )


def _why(exc: Exception) -> str:
    if isinstance(exc, WebhookVerificationError):
        return str(exc) or "signature verification failed"
    return "malformed signature headers or body"


def _report(text: str) -> None:
    err.print(f"{datetime.now():%H:%M:%S} {text}", highlight=False, markup=False)


@webhooks_app.command("listen")
def listen(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 9300,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    secret: Annotated[
        str,
        typer.Option(
            "--secret",
            envvar=SECRET_ENV,
            help=f"The endpoint's signing secret, whsec_... [{SECRET_ENV}]; prefer the "
            "variable: options are visible to other users in the process list.",
            show_default=False,
        ),
    ] = "",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each event's JSON document as received.")
    ] = False,
    fail_first: Annotated[
        int,
        typer.Option(min=0, help="Answer 500 to the first N signed events (to see retries)."),
    ] = 0,
) -> None:
    """Receive wafile's callbacks here, verify their signatures and print them."""
    import uvicorn

    if not secret:
        err.print(
            f"[red]error:[/red] give the endpoint's signing secret: set {SECRET_ENV} (or --secret)",
            highlight=False,
        )
        raise typer.Exit(2)
    try:
        listener = Listener(secret.strip(), as_json=as_json, fail_first=fail_first)
    except (EmptyWebhookSecretError, ValueError):  # never echo the value
        err.print("[red]error:[/red] the secret is not a signing secret (whsec_...)")
        raise typer.Exit(2) from None
    err.print(
        f"listening on http://{host}:{port}/ — events verified with the endpoint's secret; "
        "Ctrl-C stops" + (f"; the first {fail_first} answered 500" if fail_first else ""),
        highlight=False,
    )
    config = uvicorn.Config(
        listener.app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="off",
    )
    uvicorn.Server(config).run()
    sys.stdout.flush()
