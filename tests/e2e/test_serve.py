"""`wafile serve` as a process: first start in a fresh folder, sandbox key, restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import free_port

WAFILE = str(Path(sys.executable).parent / "wafile")


class Served:
    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("WAFILE_")}
        self.proc = subprocess.Popen(
            [WAFILE, "serve", "--port", str(self.port)],
            cwd=cwd,
            env={**base, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited: {self.proc.communicate()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("serve did not become healthy")

    def stop(self) -> tuple[str, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert self.proc.returncode in (0, -signal.SIGTERM), err
        assert "Application shutdown complete" in err
        return out, err


def test_first_start_prints_a_working_key_once(tmp_path: Path) -> None:
    env = {"WAFILE_LOG_FORMAT": "json"}
    first = Served(tmp_path, env)
    try:
        first.wait_healthy()
        # The key is printed before the server starts listening, so it is there now.
        with httpx.Client(base_url=first.url, timeout=5) as http:
            assert http.get("/readyz").status_code == 200
    finally:
        out, err = first.stop()
    key = out.strip().splitlines()[-1]
    assert key.startswith("wfk_")
    assert (tmp_path / "var" / "wafile.db").exists()
    assert (tmp_path / "var" / "secret_key").exists()

    second = Served(tmp_path, env)
    try:
        second.wait_healthy()
        with httpx.Client(base_url=second.url, timeout=5) as http:
            ok = http.get("/v1/account", headers={"Authorization": f"Bearer {key}"})
            assert ok.status_code == 200 and ok.json()["name"] == "sandbox"
            bad = http.get("/v1/account", headers={"Authorization": f"Bearer {key[:-1]}0"})
            assert bad.status_code == 401
            # The sandbox sender points at the emulator on this start's address.
            listed = http.get("/v1/senders", headers={"Authorization": f"Bearer {key}"}).json()
            [sender] = listed["data"]
            assert sender["name"] == "sandbox" and sender["default"] is True
            assert sender["graph_url"] == f"{second.url}/_emulator/whatsapp"
            pnid = sender["phone_number_id"]
            world = http.get("/_emulator/whatsapp/_control/numbers").json()
            assert pnid in json.dumps(world)
            # serve froze what it had loaded (cli.common.settle_heap): a large heap.
            assert _gauge(http.get("/metrics").text, "wafile_gc_frozen_objects") > 50_000
    finally:
        out2, err2 = second.stop()
    assert "wfk_" not in out2  # shown once, on first start only
    assert "account 'sandbox' exists" in err2

    # JSON logs: every line parses, requests carry their id, and the key never appears.
    secret = key.split("_", 2)[2]
    lines = [json.loads(line) for line in err2.splitlines() if line.startswith("{")]
    access = [doc for doc in lines if doc["logger"] == "wafile.access"]
    assert access and all("request_id" in doc for doc in access)
    assert secret not in err + err2 + out2


def _gauge(text: str, name: str) -> float:
    [value] = [line.split()[1] for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(value)


def test_sandbox_off_creates_no_account(tmp_path: Path) -> None:
    served = Served(tmp_path, {"WAFILE_SANDBOX": "false"})
    try:
        served.wait_healthy()
    finally:
        out, _ = served.stop()
    assert "wfk_" not in out
