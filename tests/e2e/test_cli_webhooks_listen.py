"""`wafile webhooks listen` as a user runs it: `wafile serve` (sandbox) and two listeners
are processes of their own; a webhook endpoint per listener, one message through the
sandbox's WhatsApp emulator, and each listener prints the message's signed events in
sequence order (one as JSON, one as readable lines). A request that is unsigned,
tampered with or signed with another secret is answered 401 and never printed.

The helpers here (a sandbox server, a listener whose stdout is kept, an endpoint, a
message) serve test_callback_recovery.py too."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.e2e.processes import Process, wait_answering
from tests.e2e.test_cli import WAFILE, run
from tests.support import TEST_SECRET, free_port
from wafile.channels.callback_http import signature_headers

PHONE = "+12015550101"  # the sandbox's ordinary user: delivered, then read
# Its events, in sequence order (the window is closed: the default template carries it).
READ_EVENTS = [
    "attempt.queued",
    "attempt.sent",
    "message.in_progress",
    "attempt.delivered",
    "message.delivered",
    "attempt.read",
    "message.read",
]
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"w" * 2000 + b"\ntrailer<<>>\n%%EOF\n"
WAIT = 40.0  # seconds the events may take to arrive


def sandbox_env(**settings: str) -> dict[str, str]:
    """The environment of a sandbox `wafile serve` in the test's folder (./var)."""
    return {
        "WAFILE_SECRET_KEY": TEST_SECRET,
        "WAFILE_LOG_LEVEL": "warning",
        "WAFILE_SWEEP_INTERVAL_SECONDS": "0",
        **settings,
    }


class Served:
    """`wafile serve` in sandbox mode, and an API key of its `sandbox` account."""

    def __init__(self, tmp_path: Path, processes: list[Process], **settings: str) -> None:
        self.env = sandbox_env(**settings)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = Process(["serve", "--port", str(port)], _child_env(self.env), tmp_path, "serve")
        processes.append(self.proc)
        wait_answering(self.proc, f"{self.url}/healthz")
        made = run(tmp_path, "keys", "create", "--account", "sandbox", env=self.env)
        self.key = made.stdout.strip().splitlines()[-1]

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


class Listener(Process):
    """`wafile webhooks listen` with its stdout kept in a file (Process drops it)."""

    def __init__(self, cwd: Path, name: str, secret: str, port: int, *options: str) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}/"
        self.stderr = cwd / f"{name}.err"
        self.stdout = cwd / f"{name}.out"
        env = {**_child_env({}), "WAFILE_WEBHOOK_SECRET": secret}
        args = ["webhooks", "listen", "--port", str(self.port), *options]
        with self.stderr.open("w") as err, self.stdout.open("w") as out:
            self.proc = subprocess.Popen([WAFILE, *args], cwd=cwd, env=env, stdout=out, stderr=err)

    def lines(self) -> list[str]:
        return self.stdout.read_text().splitlines()


def _child_env(env: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("WAFILE_")}, **env}


def listen(
    tmp_path: Path, processes: list[Process], name: str, endpoint: dict[str, str], *options: str
) -> Listener:
    """A listener on the endpoint's port, with its secret, answering."""
    port = int(endpoint["url"].rsplit(":", 1)[1].strip("/"))
    listener = Listener(tmp_path, name, endpoint["secret"], port, *options)
    processes.append(listener)
    wait_answering(listener, listener.url)
    return listener


def add_endpoint(http: httpx.Client) -> dict[str, str]:
    """A webhook endpoint for every event on a free local port (loopback http: sandbox
    mode allows it); with its secret."""
    made = http.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{free_port()}/"})
    assert made.status_code == 201, made.text
    return dict(made.json())


def send_message(http: httpx.Client) -> str:
    """Upload a PDF and send it to PHONE; the message id."""
    media = http.post("/v1/media", files={"file": ("Befund.pdf", PDF, "application/pdf")})
    assert media.status_code == 201, media.text
    sent = http.post("/v1/messages", json={"to": PHONE, "media_id": media.json()["id"]})
    assert sent.status_code == 202, sent.text
    return str(sent.json()["id"])


def wait_for(listener: Listener, count: int, *alive: Process) -> list[str]:
    """Until the listener printed `count` lines; fails if a process died or after WAIT."""
    deadline = time.monotonic() + WAIT
    while len(lines := listener.lines()) < count:
        for proc in (listener, *alive):
            proc.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{listener.name} printed {len(lines)} of {count} events:\n"
                + "\n".join(lines)
                + f"\nits stderr:\n{listener.log()}"
            )
        time.sleep(0.2)
    return lines


def test_listen_prints_the_signed_events_in_order_and_refuses_unsigned_ones(
    tmp_path: Path, processes: list[Process]
) -> None:
    served = Served(tmp_path, processes)
    with served.client() as http:
        as_json, readable = add_endpoint(http), add_endpoint(http)
        raw = listen(tmp_path, processes, "raw", as_json, "--json")
        lines = listen(tmp_path, processes, "lines", readable)
        message_id = send_message(http)

        events = [json.loads(line) for line in wait_for(raw, len(READ_EVENTS), served.proc)]
        printed = wait_for(lines, len(READ_EVENTS), served.proc)

    # Printed as they arrived, which is sequence order; every event once.
    assert [e["type"] for e in events] == READ_EVENTS
    assert [e["sequence"] for e in events] == list(range(1, len(READ_EVENTS) + 1))
    assert {e["message"]["id"] for e in events} == {message_id}
    assert len({e["id"] for e in events}) == len(events)
    assert events[-1]["message"]["status"] == "read"
    # The readable form: a line per event, naming its message, sequence and type.
    for number, (line, kind) in enumerate(zip(printed, READ_EVENTS, strict=True), start=1):
        assert f"  {message_id}  #{number}  {kind}" in line, line
    assert "whatsapp#0  delivered -> read" in printed[5]
    assert printed[6].endswith("delivered -> read")

    # Unsigned, tampered with, signed with another secret, stale: 401, never printed.
    body = json.dumps({**events[0], "id": "evt_forged"}, separators=(",", ":"))
    now = datetime.now(UTC)
    signed = signature_headers(as_json["secret"], "evt_forged", now, body)
    other = signature_headers(readable["secret"], "evt_forged", now, body)
    stale = signature_headers(
        as_json["secret"], "evt_forged", datetime(2020, 1, 1, tzinfo=UTC), body
    )
    for content, headers in (
        (body, {}),
        (body.replace('"attempt.queued"', '"message.read"'), signed),
        (body, other),
        (body, stale),
        (body, {**signed, "webhook-signature": "v1"}),
    ):
        answer = httpx.post(raw.url, content=content, headers=headers, timeout=5)
        assert answer.status_code == 401, (headers, answer.text)
    assert len(raw.lines()) == len(READ_EVENTS)
    refusals = [line for line in raw.log().splitlines() if " 401 " in line]
    assert len(refusals) == 5, raw.log()
    assert "Missing required headers" in refusals[0]
    assert "No matching signature found" in refusals[1]
    assert "too old" in refusals[3]
    # The correctly signed one is accepted (the same check, passing).
    assert httpx.post(raw.url, content=body, headers=signed, timeout=5).status_code == 200
    assert json.loads(raw.lines()[-1])["id"] == "evt_forged"

    for listener, secret in ((raw, as_json["secret"]), (lines, readable["secret"])):
        listener.terminate()
        shown = listener.stdout.read_text() + listener.log()
        assert secret not in shown and secret.removeprefix("whsec_") not in shown
