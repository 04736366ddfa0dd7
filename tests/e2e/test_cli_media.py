"""`wafile media ...` as a user runs it: a separate process talking to a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.test_cli import run
from tests.support import LiveServer, free_port, make_key

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n" + b"%" + b"x" * 300_000 + b"\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
async def env(engine: AsyncEngine, live_server: LiveServer) -> dict[str, str]:
    return {"WAFILE_URL": live_server.url, "WAFILE_API_KEY": await make_key(engine)}


def test_upload_get_list_download_delete(tmp_path: Path, env: dict[str, str]) -> None:
    source = tmp_path / "in" / "Rechnung März.pdf"
    source.parent.mkdir()
    source.write_bytes(PDF)
    work = tmp_path / "out"
    work.mkdir()

    uploaded = run(work, "media", "upload", str(source), "--json", env=env)
    item = json.loads(uploaded.stdout)
    assert (item["filename"], item["mime_type"], item["file_size"]) == (
        "Rechnung März.pdf",
        "application/pdf",
        len(PDF),
    )
    assert env["WAFILE_API_KEY"] not in uploaded.stdout + uploaded.stderr

    shown = run(work, "media", "get", item["id"], env=env).stdout
    assert item["id"] in shown and item["sha256"] in shown and "document" in shown
    renamed = run(
        work, "media", "upload", str(source), "--name", "../../x/evil.pdf", "--json", env=env
    )
    evil = json.loads(renamed.stdout)
    assert evil["filename"] == "../../x/evil.pdf"

    listed = [
        json.loads(line)
        for line in run(work, "media", "list", "--json", env=env).stdout.splitlines()
    ]
    assert [i["id"] for i in listed] == [evil["id"], item["id"]]
    table = run(work, "media", "list", "--limit", "1", env=env).stdout
    assert evil["id"] in table and item["id"] not in table

    run(work, "media", "download", item["id"], env=env)
    assert (work / "Rechnung März.pdf").read_bytes() == PDF
    again = run(work, "media", "download", item["id"], env=env, ok=False)
    assert again.returncode == 1 and "exists" in again.stderr
    run(work, "media", "download", item["id"], "--force", env=env)
    # A display name with folders in it is saved as a plain name in the current folder.
    run(work, "media", "download", evil["id"], env=env)
    assert (work / "evil.pdf").read_bytes() == PDF
    assert not (tmp_path / "x").exists()
    run(work, "media", "download", item["id"], "-o", str(work / "copy.pdf"), env=env)
    assert (work / "copy.pdf").read_bytes() == PDF
    assert not list(work.glob("*.part"))

    run(work, "media", "delete", item["id"], env=env)
    gone = run(work, "media", "get", item["id"], env=env, ok=False)
    assert gone.returncode == 1
    assert "no media" in gone.stderr and "404" in gone.stderr and "Traceback" not in gone.stderr


def test_refusals_and_failures_are_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    exe = tmp_path / "setup.exe"
    exe.write_bytes(b"MZ\x90\x00" + b"\x00" * 200)
    refused = run(tmp_path, "media", "upload", str(exe), env=env, ok=False)
    assert refused.returncode == 1
    assert "415" in refused.stderr and "Traceback" not in refused.stderr

    no_key = run(tmp_path, "media", "list", env={"WAFILE_URL": env["WAFILE_URL"]}, ok=False)
    assert no_key.returncode == 2 and "WAFILE_API_KEY" in no_key.stderr

    bad_key = run(tmp_path, "media", "list", env={**env, "WAFILE_API_KEY": "wfk_nope"}, ok=False)
    assert bad_key.returncode == 1 and "401" in bad_key.stderr

    down = {**env, "WAFILE_URL": f"http://127.0.0.1:{free_port()}"}
    unreachable = run(tmp_path, "media", "list", env=down, ok=False)
    assert unreachable.returncode == 1 and "cannot talk to wafile" in unreachable.stderr
    assert env["WAFILE_API_KEY"] not in unreachable.stderr


def test_sweep_on_a_fresh_database(tmp_path: Path) -> None:
    swept = run(tmp_path, "media", "sweep")
    assert "swept 0 expired media, 0 stored files, 0 abandoned uploads" in swept.stdout
