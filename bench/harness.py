"""The parts of bench/queue_load.py that know nothing of annotation: gunicorn as a child
process on 127.0.0.1, a minimal HTTP/1.1 client, CPU accounting from /proc, latency summaries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
BUCKET_S = 5

# (kind, finished at in seconds from the start, latency in seconds, status; 0 = no answer)
Sample = tuple[str, float, float, int]


class Gunicorn:
    """gunicorn on 127.0.0.1, started for the run and stopped after it; logs to a file."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.port = args.port or free_port()
        self.argv = [
            str(ROOT / ".venv/bin/gunicorn"), "annotate.wsgi",
            "--bind", f"{HOST}:{self.port}",
            "--worker-class", args.worker_class,
            "--workers", str(args.workers),
            "--keep-alive", "75",  # longer than any think time: idle annotators stay connected
            "--worker-connections", "2000",
            "--backlog", "2048",
        ]  # fmt: skip
        if args.worker_class == "gthread":
            self.argv += ["--threads", str(args.threads)]
        self.log = Path(os.environ.get("BENCH_LOG", "/tmp/queue_load_gunicorn.log"))  # noqa: S108

    def describe(self) -> str:
        return " ".join(self.argv[1:])

    def __enter__(self) -> Gunicorn:
        if listening(self.port):
            raise SystemExit(f"{HOST}:{self.port} is in use: pick another --port")
        env = {**os.environ, "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited; see {self.log}")
            if listening(self.port):
                return
            time.sleep(0.2)
        raise SystemExit(f"gunicorn did not listen on {HOST}:{self.port} within 60 s")

    def pids(self) -> list[int]:
        """The master and its workers, for CPU accounting."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [self.process.pid, *map(int, children.read_text().split())]

    def errors_logged(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


class Http:
    """A minimal HTTP/1.1 client on one connection, kept alive while the server allows it.

    Only what this API answers is understood: a Content-Length body (Django sets one on every
    non-streaming response); `Connection: close` (sync workers) reopens on the next call.
    """

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.auth = f"Authorization: Token {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.reader is None or self.reader.at_eof():
            self.close()
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.writer is not None
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\n{self.auth}Content-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(head[9:12])
        length = _header(head, "content-length")
        if length is None:
            raise ConnectionError(f"no content-length in {head!r}")
        data = await self.reader.readexactly(int(length))
        if _header(head, "connection") == "close":
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _header(head: str, name: str) -> str | None:
    start = head.find(f"\r\n{name}:")
    if start < 0:
        return None
    start += len(name) + 3
    return head[start : head.index("\r\n", start)].strip()


def per_bucket(samples: list[Sample], start: float) -> str:
    """Cycles/s in successive slices of the window: a steady rate, or one that drifts."""
    counts: dict[int, int] = {}
    for kind, done, _, status in samples:
        if kind == "submit" and status == 201:
            bucket = int((done - start) // BUCKET_S)
            counts[bucket] = counts.get(bucket, 0) + 1
    return " ".join(
        f"{counts.get(b, 0) / BUCKET_S:.0f}" for b in range(max(counts, default=-1) + 1)
    )


def tally(samples: list[Sample]) -> str:
    counts: dict[str, int] = {}
    for kind, _, _, status in samples:
        key = f"{kind} {status or 'no answer'}"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{key}: {n:,}" for key, n in sorted(counts.items()))


def latencies(kind: str, samples: list[Sample]) -> str:
    values = sorted(latency * 1000 for _, _, latency, _ in samples)
    if len(values) < 2:
        return f"{kind}: {len(values)} requests"
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return (
        f"{kind} latency ms ({len(values):,} requests): p50 {cuts[49]:.1f}, p95 {cuts[94]:.1f},"
        f" p99 {cuts[98]:.1f}, max {values[-1]:.1f}"
    )


class CpuMeter:
    """CPU used by gunicorn, PostgreSQL (this database's backends and the shared background
    processes, not other databases' clients), this process and the whole machine."""

    def __init__(self, gunicorn_pids: list[int]) -> None:
        self.gunicorn_pids = gunicorn_pids
        self.before = self._sample()

    def _sample(self) -> tuple[dict[int, int], dict[int, int], float, int]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " OR backend_type != 'client backend'"
            )
            postgres = [pid for (pid,) in cursor.fetchall()]
        own = os.times()
        # /proc/stat's first line: user nice system idle iowait ...; busy = all but idle, iowait
        ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (
            {pid: _cpu(pid) for pid in self.gunicorn_pids},
            {pid: _cpu(pid) for pid in postgres},
            own.user + own.system,
            sum(ticks) - ticks[3] - ticks[4],
        )

    def report(self, elapsed: float) -> str:
        after = self._sample()
        tick = os.sysconf("SC_CLK_TCK")
        # Per process, so that backends which came or went in between count only their share.
        gunicorn, postgres = (
            sum(ticks - self.before[n].get(pid, 0) for pid, ticks in after[n].items()) / tick
            for n in (0, 1)
        )
        used = [gunicorn, postgres, after[2] - self.before[2], (after[3] - self.before[3]) / tick]
        share = [f"{seconds / elapsed * 100:.0f}%" for seconds in used]
        return (
            f"CPU over {elapsed:.0f} s (200% = both cores): gunicorn {share[0]},"
            f" PostgreSQL {share[1]}, load generator {share[2]}; whole machine {share[3]}"
        )


def _cpu(pid: int) -> int:
    """utime + stime of a process in clock ticks; 0 for one that has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database of DATABASE_URL if missing; False for other databases."""
    if not url.startswith(("postgres://", "postgresql://")):
        return False
    import psycopg
    from psycopg import sql

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")
    return True
