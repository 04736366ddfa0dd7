"""Upload throughput and server memory: `POST /v1/media` against `wafile serve`.

For each size the same file goes up (a) as multipart/form-data, (b) as a raw body,
and (c) to a ceiling: a bare Starlette endpoint under the same uvicorn that only
streams `request.stream()` through sha256 into a file, i.e. the least any upload
path must do. curl is the client (C, streams from disk, leaves the CPU to the
servers). Memory is the server's peak RSS (VmHWM) growth over its size before the
first upload of that size: it must not grow with the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from bench.server import prepare, serve, wait_until_up
from tests.support import free_port

MB = 1024 * 1024
# No `Expect: 100-continue` round trip: the same request shape for every server.
CURL = ["curl", "-sS", "-o", os.devnull, "-w", "%{http_code} %{time_total}", "-H", "Expect:"]

CEILING = """
import hashlib, sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def sink(request):
    digest, size = hashlib.sha256(), 0
    with open(sys.argv[2], "wb") as f:
        async for chunk in request.stream():
            digest.update(chunk)
            f.write(chunk)
            size += len(chunk)
    return JSONResponse({"sha256": digest.hexdigest(), "size": size}, status_code=201)

async def healthz(request):
    return JSONResponse({})

app = Starlette(routes=[Route("/sink", sink, methods=["POST"]), Route("/healthz", healthz)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


@dataclass
class Result:
    seconds: float
    status: int


def make_file(path: Path, size: int) -> None:
    """A PDF by its header and trailer, random (incompressible) bytes in between."""
    with path.open("wb") as f:
        f.write(b"%PDF-1.4\n")
        left = size - 9 - 7
        while left > 0:
            n = min(left, 8 * MB)
            f.write(os.urandom(n))
            left -= n
        f.write(b"\n%%EOF\n")


def curl(args: list[str], url: str) -> Result:
    out = subprocess.run(
        [*CURL, *args, url],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout.split()
    return Result(seconds=float(out[1]), status=int(out[0]))


def peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,100,1024", help="file sizes in MiB")
    parser.add_argument("--repeat", type=int, default=3, help="uploads per size and path")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    sizes = [int(s) * MB for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
        key = asyncio.run(prepare(url, tmp))
        port, ceiling_port = free_port(), free_port()
        server = serve(url, tmp, port, max_upload_bytes=str(max(sizes) + MB))
        ceiling = subprocess.Popen(
            [sys.executable, "-c", CEILING, str(ceiling_port), str(tmp / "sink.bin")]
        )
        rows: list[str] = []
        try:
            wait_until_up(ceiling, f"http://127.0.0.1:{ceiling_port}/healthz")
            base = f"http://127.0.0.1:{port}/v1/media"
            auth = ["-H", f"Authorization: Bearer {key}"]
            with Progress() as progress:
                task = progress.add_task("uploads", total=len(sizes) * 3 * args.repeat)
                for size in sizes:
                    path = tmp / f"f{size}.pdf"
                    make_file(path, size)
                    before = rss_kb(server.pid)
                    runs: dict[str, list[float]] = {"ceiling": [], "multipart": [], "raw": []}
                    raw_body = ["-X", "POST", "-T", str(path)]  # streamed from disk
                    plans = {
                        "ceiling": ([*raw_body], f"http://127.0.0.1:{ceiling_port}/sink"),
                        "multipart": ([*auth, "-F", f"file=@{path};type=application/pdf"], base),
                        "raw": (
                            [
                                *auth,
                                *raw_body,
                                "-H",
                                "Content-Type: application/pdf",
                                "-H",
                                "Content-Disposition: attachment; filename=bench.pdf",
                            ],
                            base,
                        ),
                    }
                    for _ in range(args.repeat):
                        for name, (curl_args, target) in plans.items():
                            result = curl(curl_args, target)
                            if result.status != 201:
                                raise SystemExit(f"{name} upload of {size} bytes: {result.status}")
                            runs[name].append(size / MB / result.seconds)
                            progress.advance(task)
                    growth = (peak_kb(server.pid) - before) / 1024
                    ceil = statistics.median(runs["ceiling"])
                    multi = statistics.median(runs["multipart"])
                    raw = statistics.median(runs["raw"])
                    rows.append(
                        json.dumps(
                            {
                                "size_mib": size // MB,
                                "ceiling_mb_s": round(ceil, 1),
                                "multipart_mb_s": round(multi, 1),
                                "multipart_pct_of_ceiling": round(100 * multi / ceil),
                                "raw_mb_s": round(raw, 1),
                                "raw_pct_of_ceiling": round(100 * raw / ceil),
                                "server_peak_rss_growth_mib": round(max(growth, 0), 1),
                                "server_rss_mib": round(rss_kb(server.pid) / 1024, 1),
                            }
                        )
                    )
                    path.unlink()
        finally:
            for proc in (server, ceiling):
                proc.terminate()
                proc.wait(timeout=30)
    backend = url.split(":", 1)[0]
    print(f"upload backend={backend} repeat={args.repeat} client=curl (MB = MiB; medians)")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
