"""The `wafile` command as a user runs it: a separate process, a fresh folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wafile.db import migrate

WAFILE = str(Path(sys.executable).parent / "wafile")


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WAFILE_")}
    result = subprocess.run(
        [WAFILE, *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def db_env(database_url: str) -> dict[str, str]:
    return {"WAFILE_DATABASE_URL": database_url}


def test_accounts_and_keys_end_to_end(tmp_path: Path, db_env: dict[str, str]) -> None:
    if not db_env["WAFILE_DATABASE_URL"].startswith("sqlite"):
        # PostgreSQL is never migrated behind the operator's back.
        refused = run(tmp_path, "accounts", "create", "acme", env=db_env, ok=False)
        assert refused.returncode == 1
        assert "run `wafile migrate`" in refused.stderr
        migrated = run(tmp_path, "migrate", env=db_env)
        assert f"base -> {migrate.head()}" in migrated.stdout
        assert "already at" in run(tmp_path, "migrate", env=db_env).stdout
    run(tmp_path, "accounts", "create", "acme", env=db_env)
    created = run(tmp_path, "keys", "create", "--account", "acme", "--name", "ci", env=db_env)
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("wfk_") and len(key) == 4 + 12 + 1 + 48
    assert key not in created.stderr

    listed = [
        json.loads(line)
        for line in run(tmp_path, "keys", "list", "--json", env=db_env).stdout.splitlines()
    ]
    assert [(k["account"], k["name"], k["revoked_at"]) for k in listed] == [("acme", "ci", None)]
    assert key not in json.dumps(listed)
    table = run(tmp_path, "keys", "list", env=db_env).stdout
    assert listed[0]["prefix"] in table and key not in table

    run(tmp_path, "keys", "revoke", listed[0]["prefix"], env=db_env)
    listed = [
        json.loads(line)
        for line in run(
            tmp_path, "keys", "list", "--json", "--account", "acme", env=db_env
        ).stdout.splitlines()
    ]
    assert listed[0]["revoked_at"] is not None

    names = [
        json.loads(line)["name"]
        for line in run(tmp_path, "accounts", "list", "--json", env=db_env).stdout.splitlines()
    ]
    assert names == ["acme"]


def test_user_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    cases = [
        (("keys", "create", "--account", "ghost"), 1, "no account named 'ghost'"),
        (("accounts", "create", "bad name"), 1, "account name may hold only"),
        (("keys", "revoke", "wfk_000000000000"), 1, "no API key"),
    ]
    for args, code, text in cases:
        result = run(tmp_path, *args, ok=False)
        assert result.returncode == code, result.stderr
        assert text in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
    run(tmp_path, "accounts", "create", "acme")
    dup = run(tmp_path, "accounts", "create", "acme", ok=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("WAFILE_PORT", "http"), ("WAFILE_LOG_FORMAT", "yaml"), ("WAFILE_SANDBOX", "perhaps")],
)
def test_bad_setting_stops_with_one_line_naming_it(tmp_path: Path, name: str, value: str) -> None:
    for args in (("serve",), ("accounts", "list")):
        result = run(tmp_path, *args, env={name: value}, ok=False)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {name}:"), result.stderr


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    env = {"WAFILE_DATABASE_URL": "postgresql://u:topsecret@127.0.0.1:1/x"}
    result = run(tmp_path, "accounts", "list", env=env, ok=False)
    assert result.returncode == 1
    assert "database cannot be reached" in result.stderr
    assert "topsecret" not in result.stderr and "Traceback" not in result.stderr
