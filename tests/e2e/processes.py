"""`wafile` commands as processes of their own, for the e2e tests that run the API,
the emulator and workers apart (as in production) and kill or stop them. The
`processes` fixture (conftest.py) kills whatever a test left running."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.test_cli import WAFILE

__all__ = ["START", "Process", "wait_answering"]

START = 30.0  # seconds a process may take to start or to stop


class Process:
    """A wafile command as its own process, stderr in a file (a full pipe would block it)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, name: str) -> None:
        self.name = name
        self.stderr = cwd / f"{name}.err"
        with self.stderr.open("w") as err:
            self.proc = subprocess.Popen(
                [WAFILE, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err
            )

    def log(self) -> str:
        return self.stderr.read_text()

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)  # no shutdown at all: leases left behind
        self.proc.wait(timeout=START)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=START)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()


def wait_answering(proc: Process, url: str) -> None:
    """Until `url` answers; fails if the process exits or after START seconds."""
    deadline = time.monotonic() + START
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            proc.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"{proc.name} never answered {url}") from None
            time.sleep(0.1)
