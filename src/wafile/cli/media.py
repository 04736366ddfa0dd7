"""`wafile media ...`: upload, look up, list, download and delete files, and sweep.

upload/get/list/download/delete talk to a running server over its API (like any
client, with an API key), so they work from any machine; `sweep` works directly on
the configured database and media store, like the admin commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    Progress,
    TextColumn,
)
from rich.table import Column, Table

from wafile.cli.common import clock, engine, err, errors_to_exit, out, run, settings_for
from wafile.cli.remote import (
    DEFAULT_URL,
    ApiKeyOpt,
    AsJson,
    ServerUrl,
    client,
    progress_bar,
    server_errors,
)
from wafile.db.engine import session_factory
from wafile.dispatch.sweeper import sweep as sweep_once
from wafile.services.database import prepare_database
from wafile.services.media import open_media_store
from wafile.services.retention import SweepReport

__all__ = ["media_app"]

media_app = typer.Typer(
    help="Files in the media store: upload, get, list, download, delete, sweep.",
    no_args_is_help=True,
)


def _print_media(item: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(item, ensure_ascii=False))
        return
    wa = item.get("whatsapp") or {}
    how = f"sent as {wa.get('sent_as')}" if wa.get("sendable") else "not sendable"
    out.print(
        f"{item['id']}  {item['filename']}  {item['mime_type']}  {item['file_size']} bytes\n"
        f"  category {item['category']}, WhatsApp: {how} ({wa.get('reason', '')})\n"
        f"  sha256   {item['sha256']}\n"
        f"  expires  {item['expires_at']}\n"
        f"  url      {item['url']}",
        highlight=False,
    )


@media_app.command("upload")
def upload(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The file.")
    ],
    mime_type: Annotated[
        str | None, typer.Option("--type", help="The MIME type you claim (default: guessed).")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Filename to show (default: the file's).")
    ] = None,
    url: ServerUrl = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
    as_json: AsJson = False,
) -> None:
    """Upload a file (streamed, with a progress bar) and print the media object."""

    async def work() -> dict[str, Any]:
        async with client(url, api_key) as api:
            with progress_bar() as bar:
                task = bar.add_task(f"upload {file.name}", total=file.stat().st_size)
                return await api.upload(
                    file,
                    mime_type=mime_type,
                    filename=name,
                    progress=lambda n: bar.advance(task, n),
                )

    with server_errors(url):
        item = run(work())
    _print_media(item, as_json)


@media_app.command("get")
def get(
    media_id: Annotated[str, typer.Argument(help="The media id.")],
    url: ServerUrl = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
    as_json: AsJson = False,
) -> None:
    """Show a media object (with a fresh signed download link)."""

    async def work() -> dict[str, Any]:
        async with client(url, api_key) as api:
            return await api.get_media(media_id)

    with server_errors(url):
        item = run(work())
    _print_media(item, as_json)


@media_app.command("list")
def list_media(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
    url: ServerUrl = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
    as_json: AsJson = False,
) -> None:
    """List the account's media, newest first (JSON lines with --json)."""

    async def work() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        async with client(url, api_key) as api:
            while len(found) < limit:
                page = await api.list_media(limit=min(200, limit - len(found)), cursor=cursor)
                found.extend(page["data"])
                cursor = page.get("next_cursor")
                if not cursor:
                    break
        return found

    with server_errors(url):
        items = run(work())
    if as_json:
        for item in items:
            print(json.dumps(item, ensure_ascii=False))
        return
    table = Table("filename", "type", "bytes", "category", "created")
    table.columns.insert(0, Column("id", no_wrap=True))  # ids are for copying: never cut
    for item in items:
        table.add_row(
            item["id"],
            item["filename"],
            item["mime_type"],
            str(item["file_size"]),
            item["category"],
            item["created_at"],
        )
    out.print(table)


@media_app.command("download")
def download(
    media_id: Annotated[str, typer.Argument(help="The media id.")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Where to write (default: the original filename)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    url: ServerUrl = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
) -> None:
    """Download a file, under its original name in the current folder unless -o says."""

    async def work() -> Path:
        async with client(url, api_key) as api:
            target = output or Path(_safe_name(await api.get_media(media_id)))
            if target.exists() and not force:
                err.print(f"[red]error:[/red] {target} exists (use --force to overwrite)")
                raise typer.Exit(1)
            partial = target.with_name(target.name + ".part")
            with progress_bar() as bar, partial.open("wb") as f:
                task = bar.add_task(f"download {target.name}", total=None)
                try:
                    await api.download(
                        media_id,
                        f,
                        started=lambda size: bar.update(task, total=size),
                        progress=lambda n: bar.advance(task, n),
                    )
                except BaseException:
                    partial.unlink(missing_ok=True)
                    raise
            partial.replace(target)  # never leave a half file under the real name
            return target

    with server_errors(url):
        target = run(work())
    err.print(f"saved {target}", highlight=False)


def _safe_name(item: dict[str, Any]) -> str:
    """The display name as a plain file name here: no folders, no way out of the cwd."""
    name = Path(str(item["filename"]).replace("\\", "/")).name.strip()
    if name in {"", ".", ".."} or name.startswith(".") or any(ord(c) < 32 for c in name):
        return str(item["id"])
    return name


@media_app.command("delete")
def delete(
    media_id: Annotated[str, typer.Argument(help="The media id.")],
    url: ServerUrl = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
) -> None:
    """Delete a media object (its stored file goes when no other media shares it)."""

    async def work() -> None:
        async with client(url, api_key) as api:
            await api.delete_media(media_id)

    with server_errors(url):
        run(work())
    err.print(f"deleted {media_id}", highlight=False)


@media_app.command("sweep")
@errors_to_exit
def sweep() -> None:
    """Apply retention now: delete expired media and what crashes left in the store.

    Works on the configured database and media store directly (no server needed).
    `wafile serve` does the same every WAFILE_SWEEP_INTERVAL_SECONDS.
    """
    settings = settings_for()

    async def work() -> SweepReport:
        async with engine(settings) as db:
            await prepare_database(db, settings)
            store = open_media_store(settings)
            with Progress(TextColumn("{task.description}"), console=err, transient=True) as bar:
                task = bar.add_task("sweeping")

                def show(total: SweepReport) -> None:
                    bar.update(task, description=f"sweeping: {_summary(total)}")

                return await sweep_once(session_factory(db), store, clock, progress=show)

    report = run(work())
    out.print(f"swept {_summary(report)}", highlight=False)


def _summary(report: SweepReport) -> str:
    return (
        f"{report.expired} expired media, {report.blobs} stored files, "
        f"{report.temporaries} abandoned uploads"
    )
