"""`wafile emulator whatsapp` as a user runs it: a process serving Graph routes at the root."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.test_cli import WAFILE, run
from tests.support import free_port


def start(cwd: Path, which: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`wafile emulator WHICH` on a free port, once its control API answers (30 s at most)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAFILE_")}
    proc = subprocess.Popen(
        [WAFILE, "emulator", which, "--port", str(port), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base}/_control/world", timeout=1)
            return proc, base
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("the emulator did not start") from None
            time.sleep(0.1)


def test_whatsapp_emulator_alone_with_a_world_file(tmp_path: Path) -> None:
    world = tmp_path / "world.yaml"
    world.write_text(
        "numbers:\n"
        '  - {phone_number_id: "1001", display_phone_number: "15550001001", waba_id: "2001",\n'
        '     access_token: "tok", app_secret: "sec", webhook_url: null, verify_token: "vt"}\n'
        "phones:\n"
        '  - {number: "4915100000001", window_open: true, deliver_after: 0.05}\n'
    )
    proc, base = start(tmp_path, "whatsapp", "--world", str(world))
    try:
        sent = httpx.post(
            f"{base}/v23.0/1001/messages",
            headers={"Authorization": "Bearer tok"},
            json={
                "messaging_product": "whatsapp",
                "to": "+49 151 00000001",
                "type": "text",
                "text": {"body": "hello"},
            },
        )
        assert sent.status_code == 200, sent.text
        wrong = httpx.post(f"{base}/v23.0/1001/messages", headers={"Authorization": "Bearer x"})
        assert wrong.json()["error"]["code"] == 190
        inbox = httpx.get(f"{base}/_control/phones/4915100000001/inbox").json()["messages"]
        assert [m["text"] for m in inbox] == ["hello"]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_a_bad_world_file_is_one_line(tmp_path: Path) -> None:
    world = tmp_path / "world.yaml"
    world.write_text("numbers:\n  - {phone_number_id: abc}\n")
    result = run(tmp_path, "emulator", "whatsapp", "--world", str(world), ok=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "numbers[0]" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_sms_emulator_alone_with_the_demo_world(tmp_path: Path) -> None:
    proc, base = start(tmp_path, "sms")
    try:
        sid = "AC" + "0" * 31 + "1"
        sent = httpx.post(
            f"{base}/2010-04-01/Accounts/{sid}/Messages.json",
            auth=(sid, "demo-auth-token"),
            data={"To": "+12015550112", "From": "+15550001000", "Body": "hi"},
        )
        assert sent.status_code == 400 and sent.json()["code"] == 21211  # the magic invalid number
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "demo world: account SID" in err
