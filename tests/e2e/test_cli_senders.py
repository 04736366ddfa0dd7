"""`wafile senders ...` as a user runs it: credentials from the environment, never shown."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli import run

TOKEN = "EAAG-cli-secret-token"
SECRET = "cli-app-secret-value"


def test_add_list_remove(tmp_path: Path) -> None:
    run(tmp_path, "accounts", "create", "acme")
    env = {"WAFILE_SENDER_ACCESS_TOKEN": TOKEN, "WAFILE_SENDER_APP_SECRET": SECRET}
    args = ["--phone-number-id", "1001", "--waba-id", "2001", "--display-number", "15550001001"]
    added = run(tmp_path, "senders", "add", "--account", "acme", "--name", "main", *args, env=env)
    assert "webhook URL: http://127.0.0.1:8000/webhooks/whatsapp/snd_" in added.stdout
    verify_token = added.stdout.strip().splitlines()[-1]
    assert len(verify_token) >= 24 and "shown only now" in added.stderr

    listed = run(tmp_path, "senders", "list", "--account", "acme", "--json").stdout
    [sender] = [json.loads(line) for line in listed.splitlines()]
    assert (sender["name"], sender["phone_number_id"], sender["default"]) == ("main", "1001", True)
    table = run(tmp_path, "senders", "list", "--account", "acme").stdout
    for secret in (TOKEN, SECRET, verify_token):
        assert secret not in listed + table + added.stderr

    dup = run(
        tmp_path, "senders", "add", "--account", "acme", "--name", "main", *args, env=env, ok=False
    )
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad = run(
        tmp_path,
        "senders",
        "add",
        "--account",
        "acme",
        "--name",
        "x",
        "--phone-number-id",
        "abc",
        "--waba-id",
        "2",
        "--display-number",
        "15550001001",
        env=env,
        ok=False,
    )
    assert bad.returncode == 1 and "phone_number_id" in bad.stderr and TOKEN not in bad.stderr

    run(tmp_path, "senders", "remove", "--account", "acme", "main")
    gone = run(tmp_path, "senders", "remove", "--account", "acme", "main", ok=False)
    assert gone.returncode == 1 and "no sender 'main'" in gone.stderr
