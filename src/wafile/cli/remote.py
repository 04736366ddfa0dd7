"""What the commands that talk to a running server share: where it is, the key, one
line per failure, and the progress bar."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated

import httpx
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from wafile.cli.common import err
from wafile.client import ApiError, WafileClient

__all__ = [
    "DEFAULT_URL",
    "ApiKeyOpt",
    "AsJson",
    "ServerUrl",
    "client",
    "progress_bar",
    "server_errors",
]

ServerUrl = Annotated[
    str,
    typer.Option(
        "--url", envvar="WAFILE_URL", help="The wafile server [WAFILE_URL].", show_default=True
    ),
]
ApiKeyOpt = Annotated[
    str,
    typer.Option(
        "--api-key",
        envvar="WAFILE_API_KEY",
        help="API key of the account [WAFILE_API_KEY]; prefer the variable: options are "
        "visible to other users in the process list.",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the JSON the API returned.")]
DEFAULT_URL = "http://127.0.0.1:8000"


@contextmanager
def server_errors(url: str) -> Iterator[None]:
    """The server's refusals and network failures as one line and exit code 1."""
    try:
        yield
    except ApiError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        err.print(f"[red]error:[/red] cannot talk to wafile at {url}: {exc}", highlight=False)
        raise typer.Exit(1) from None


@asynccontextmanager
async def client(url: str, api_key: str) -> AsyncIterator[WafileClient]:
    if not api_key:
        err.print("[red]error:[/red] give an API key: set WAFILE_API_KEY (or --api-key)")
        raise typer.Exit(2)
    async with WafileClient(url, api_key) as client:
        yield client


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
