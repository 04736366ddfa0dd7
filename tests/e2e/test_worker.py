"""Workers as processes: killed with SIGKILL mid-run, stopped with SIGTERM, and
`wafile worker` itself. Every job is done, none lost, and a job runs twice only if
it was in flight when its worker died."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import TEST_SECRET
from wafile.config import Settings
from wafile.db.engine import session_factory, transaction
from wafile.db.jobs import JobRepository
from wafile.dispatch.sweeper import SWEEP_KIND

BOUND = 60.0  # seconds any wait may take before the test fails

# A worker process with one test kind. The handler's side effect outside the
# database (a line in a file) can happen twice; its row, written in the job's own
# transaction, exactly once.
CHILD = """
import asyncio, os, signal, sys
from datetime import timedelta
from sqlalchemy import text
from wafile.clock import SystemClock
from wafile.config import load_settings
from wafile.db.engine import create_engine, session_factory
from wafile.dispatch.jobs import HandlerRegistry, WorkerDeps
from wafile.dispatch.worker import WorkerOptions, run_worker
from wafile.services.media import open_media_store

log_path, concurrency = sys.argv[1], int(sys.argv[2])
lease, grace = float(sys.argv[3]), float(sys.argv[4])

def note(word, job):
    with open(log_path, "a") as f:
        f.write(f"{word} {job.id} {os.getpid()}\\n")

async def record(job, ctx):
    note("start", job)
    await asyncio.sleep(job.payload["seconds"])
    note("done", job)
    await ctx.session.execute(
        text("INSERT INTO test_runs (job_id, pid) VALUES (:j, :p)"), {"j": job.id, "p": os.getpid()}
    )

async def main():
    settings = load_settings(env_file=None)
    engine = create_engine(settings.effective_database_url)
    handlers = HandlerRegistry()
    handlers.register("test.record", record)
    deps = WorkerDeps(
        sessions=session_factory(engine), clock=SystemClock(), settings=settings,
        store=open_media_store(settings),
    )
    options = WorkerOptions(
        concurrency=concurrency, lease=timedelta(seconds=lease), poll_interval=0.1, grace=grace
    )
    loop = asyncio.get_running_loop()

    def started(worker):
        loop.add_signal_handler(signal.SIGTERM, worker.stop)
        print("ready", flush=True)

    try:
        await run_worker(engine, deps, handlers=handlers, options=options, on_start=started)
    finally:
        await engine.dispose()

asyncio.run(main())
"""


def child_env(settings: Settings) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WAFILE_")}
    return {
        **base,
        "WAFILE_DATABASE_URL": settings.effective_database_url,
        "WAFILE_DATA_DIR": str(settings.data_dir),
        "WAFILE_SECRET_KEY": TEST_SECRET,
        "WAFILE_SWEEP_INTERVAL_SECONDS": "0",
        "WAFILE_LOG_LEVEL": "info",
    }


class Child:
    def __init__(
        self, settings: Settings, log: Path, *, concurrency: int, lease: float, grace: float
    ) -> None:
        self.stderr = log.with_name(f"{log.name}.{os.urandom(3).hex()}.err")
        with self.stderr.open("w") as err:  # a file: a full pipe would block the child
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(log), str(concurrency), str(lease), str(grace)],
                env=child_env(settings),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], BOUND)
        line = self.proc.stdout.readline() if ready else ""
        assert line.strip() == "ready", self.stderr.read_text()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=BOUND)

    def terminate(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=BOUND)
        return self.proc.returncode, self.stderr.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for child in made:
        child.close()


async def prepare(engine: AsyncEngine, n: int, seconds: float) -> list[str]:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE test_runs (job_id VARCHAR(40), pid INTEGER)"))
    now = datetime.now(UTC)
    ids = []
    async with transaction(session_factory(engine)) as session:
        repo = JobRepository(session)
        for i in range(n):
            # Distinct run_at: claimed in a known order, a few at a time.
            at = now + timedelta(microseconds=i)
            job_id = await repo.enqueue("test.record", {"seconds": seconds}, at, now=now)
            assert job_id is not None
            ids.append(job_id)
    return ids


def lines(log: Path, word: str) -> list[str]:
    """The job ids of the log's `word` lines (complete lines only: it is being written)."""
    if not log.exists():
        return []
    complete = log.read_text().split("\n")[:-1]
    return [ln.split()[1] for ln in complete if ln.startswith(word + " ")]


async def wait_for(check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def runs(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT job_id FROM test_runs"))).scalars())


async def jobs_left(engine: AsyncEngine) -> list[tuple[str, int, str | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, attempts, lease_owner FROM jobs"))
        return [(r[0], r[1], r[2]) for r in rows]


async def test_a_killed_worker_loses_nothing(
    engine: AsyncEngine, settings: Settings, tmp_path: Path, children: list[Child]
) -> None:
    log = tmp_path / "runs.log"
    ids = await prepare(engine, 40, seconds=0.2)
    first = Child(settings, log, concurrency=4, lease=2, grace=30)
    children.append(first)

    def busy() -> bool:
        # Some done, and some mid-handler (each sleeps 0.2 s after its start line).
        return (
            len(lines(log, "done")) >= 8 and len(lines(log, "start")) - len(lines(log, "done")) >= 2
        )

    await wait_for(busy, "the first worker to be busy")
    first.kill()  # SIGKILL: no shutdown, leases left behind
    # In flight at the kill: started, never committed. At most `concurrency` of them.
    in_flight = set(lines(log, "start")) - set(await runs(engine))
    assert 1 <= len(in_flight) <= 4

    second = Child(settings, log, concurrency=4, lease=2, grace=30)
    children.append(second)

    async def all_done() -> bool:
        return len(await runs(engine)) >= 40 and not await jobs_left(engine)

    await wait_for(all_done, "the second worker to finish everything")
    code, err = second.terminate()
    assert code == 0, err

    done = await runs(engine)
    assert sorted(done) == sorted(ids)  # every job's transaction committed exactly once
    starts = Counter(lines(log, "start"))
    twice = {job_id for job_id, n in starts.items() if n > 1}
    # Only jobs in flight at the kill ran again (once their leases expired), and once.
    assert twice <= in_flight
    assert all(starts[job_id] <= 2 for job_id in twice)
    assert sum(starts.values()) <= len(ids) + len(in_flight)


async def test_sigterm_finishes_running_jobs_and_claims_no_more(
    engine: AsyncEngine, settings: Settings, tmp_path: Path, children: list[Child]
) -> None:
    log = tmp_path / "runs.log"
    await prepare(engine, 6, seconds=1.0)
    child = Child(settings, log, concurrency=3, lease=30, grace=30)
    children.append(child)
    await wait_for(lambda: len(lines(log, "start")) == 3, "three jobs running")
    code, err = child.terminate()
    assert code == 0, err
    assert sorted(lines(log, "done")) == sorted(lines(log, "start"))
    assert sorted(await runs(engine)) == sorted(lines(log, "start"))
    left = await jobs_left(engine)
    assert len(left) == 3 and all(attempts == 0 and owner is None for _, attempts, owner in left)


async def test_sigterm_past_the_grace_period_releases_the_jobs(
    engine: AsyncEngine, settings: Settings, tmp_path: Path, children: list[Child]
) -> None:
    log = tmp_path / "runs.log"
    ids = await prepare(engine, 2, seconds=3600)
    child = Child(settings, log, concurrency=2, lease=30, grace=0.2)
    children.append(child)
    await wait_for(lambda: len(lines(log, "start")) == 2, "both jobs running")
    code, err = child.terminate()
    assert code == 0, err
    assert await runs(engine) == []
    left = await jobs_left(engine)
    # Back in the queue untried: claimable now by the next worker, attempt not counted.
    assert sorted(left) == sorted((job_id, 0, None) for job_id in ids)


# `wafile worker`: the integrator registers the command in wafile.cli; typer.run
# gives the same function its own command line here.
CLI = "import typer; from wafile.cli.worker import worker; typer.run(worker)"


def cli(settings: Settings, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        env={**child_env(settings), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_wafile_worker_refuses_sqlite_without_force(
    engine: AsyncEngine, settings: Settings
) -> None:
    if not settings.is_sqlite:
        pytest.skip("SQLite only")
    proc = cli(settings)
    _, err = proc.communicate(timeout=BOUND)
    assert proc.returncode == 2
    assert "SQLite" in err and "--force" in err


async def test_wafile_worker_sweeps_and_stops_on_sigterm(
    engine: AsyncEngine, settings: Settings
) -> None:
    args = ["--force"] if settings.is_sqlite else []
    proc = cli(
        settings,
        "--concurrency",
        "2",
        *args,
        WAFILE_SWEEP_INTERVAL_SECONDS="3600",
        WAFILE_WORKER_NICE="7",
    )
    try:
        sessions = session_factory(engine)

        async def swept_and_rescheduled() -> bool:
            if proc.poll() is not None:
                raise AssertionError(proc.communicate())
            async with transaction(sessions) as session:
                job = await JobRepository(session).by_dedupe_key(SWEEP_KIND)
            # Ensured at start, run once, and queued again an interval later.
            return (
                job is not None
                and job.lease_owner is None
                and job.run_at > datetime.now(UTC) + timedelta(minutes=30)
            )

        await wait_for(swept_and_rescheduled, "the recurring sweep to run")
        # WAFILE_WORKER_NICE: the worker runs below this test's CPU priority.
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == min(19, ours + 7)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "2 at once" in err and SWEEP_KIND in err
    # child_env sets no public URL: the worker says its SMS links would be wrong.
    assert "WAFILE_PUBLIC_URL is not set" in err
