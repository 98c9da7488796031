"""The processes a benchmark runs against, all started here and all on 127.0.0.1.

A :class:`Stack` is one store (a fresh PostgreSQL database, or a SQLite file) with a
data folder holding the dev signing key. It starts ``discount-codes serve --dev
--no-worker`` (1 or N API processes), ``discount-codes worker`` processes, the webhook
receiver and child processes (load generators, raw baselines), and stops them all.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


class NotRun(Exception):
    """The scenario cannot run here (a route is missing, a service answers wrongly...);
    the message says why and goes to the results as ``not run: <why>``."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "discount_codes.cli", *args]


# --- memory ----------------------------------------------------------------------------------


class RssSampler:
    """Samples the resident memory of processes (and their children) in a thread."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.series: dict[str, list[tuple[float, int]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self.pids[name] = pid
            self.peak.setdefault(name, 0)
            self.series.setdefault(name, [])

    def forget(self, name: str) -> None:
        with self._lock:
            self.pids.pop(name, None)

    def reset_peak(self, name: str) -> None:
        with self._lock:
            self.peak[name] = 0

    @staticmethod
    def _family(pid: int, children: dict[int, list[int]]) -> list[int]:
        """The process and its descendants, from one reading of every process's parent."""
        out, todo = [], [pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children.get(p, ()))
        return out

    def sample(self) -> None:
        """Largest resident set among each watched process and its children (uvicorn
        ``--workers`` runs the app in children; each process is judged on its own). The
        machine's processes are listed once per sample, not once per watched process: the
        sampler runs beside the measured load and must cost it next to nothing."""
        now = time.time()
        with self._lock:
            pids = dict(self.pids)
        if not pids:
            return
        children: dict[int, list[int]] = {}
        for proc in psutil.process_iter(["ppid"]):
            children.setdefault(proc.info["ppid"], []).append(proc.pid)
        for name, pid in pids.items():
            rss = 0
            for member in self._family(pid, children):
                with suppress(psutil.Error):
                    rss = max(rss, psutil.Process(member).memory_info().rss)
            if rss:
                with self._lock:
                    self.peak[name] = max(self.peak.get(name, 0), rss)
                    self.series[name].append((now, rss))
            else:
                self.forget(name)  # gone: not listed again

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


# --- processes -------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@dataclass
class Api:
    url: str
    proc: Proc
    processes: int
    key: tuple[Any, ...] = ()
    worker: bool = False


def _wait_ready(url: str, proc: Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise NotRun(f"{proc.name} exited with {proc.process.returncode}: {proc.tail(600)}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    proc.stop(signal.SIGKILL)
    raise NotRun(f"{proc.name} not ready within {timeout:.0f} s: {proc.tail(600)}")


def server_pids(proc: Proc, processes: int) -> list[int]:
    """The processes that serve: the process itself, or its ``processes`` children when
    uvicorn runs ``--workers N`` (the parent only supervises)."""
    if processes <= 1:
        return [proc.pid]
    with suppress(psutil.Error):
        return [c.pid for c in psutil.Process(proc.pid).children()]
    return []


def wait_every_process(url: str, proc: Proc, processes: int, timeout: float = 60) -> None:
    """With ``--workers N`` the first answer comes from whichever worker finished start-up
    first; a load that starts then meets a half-started server. Hold a few fresh
    connections open at once until each worker process owns one of them (a worker accepts
    only once its start-up is done)."""
    if processes <= 1:
        return
    host, port = url.rsplit("//", 1)[1].split(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        socks = []
        try:
            for _ in range(4 * processes):
                s = socket.create_connection((host, int(port)), timeout=5)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
                socks.append(s)
            for s in socks:
                s.recv(4096)  # answered: the worker accepted and served it
            local = {s.getsockname()[1] for s in socks}
            owners = set()
            for pid in server_pids(proc, processes):
                with suppress(psutil.Error):
                    for c in psutil.Process(pid).net_connections("tcp"):
                        if c.raddr and c.raddr.port in local:
                            owners.add(pid)
            if len(owners) >= processes:
                return
        except OSError:
            pass
        finally:
            for s in socks:
                s.close()
        if not proc.alive():
            raise NotRun(f"{proc.name} exited with {proc.process.returncode}: {proc.tail(600)}")
        time.sleep(0.1)
    raise NotRun(f"{proc.name}: not every one of its {processes} processes served in time")


# --- stores ----------------------------------------------------------------------------------


def _run_async(coro: Any) -> Any:
    return asyncio.run(coro)


def pg_dsn(database: str) -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + database


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class Stack:
    """One store and the processes running on it. Every stack of a run shares one data
    folder, hence one dev signing key, so tokens minted once serve every server."""

    backend: str  # "postgresql" | "sqlite"
    workdir: Path
    label: str
    sampler: RssSampler
    data_dir: Path
    database: str = ""
    db_url: str = ""
    raw_dsn: str = ""  # asyncpg DSN (PostgreSQL) or sqlite file path
    procs: list[Proc] = field(default_factory=list)
    api: Api | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    # -- life cycle --

    def create(self) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.backend == "postgresql":
            self.database = f"dc_bench_{os.getpid()}_{self.label}_{uuid.uuid4().hex[:6]}"
            try:
                _run_async(_pg_admin(f'CREATE DATABASE "{self.database}"'))
            except (OSError, asyncpg.PostgresError) as exc:
                raise NotRun(f"PostgreSQL at {PG_ADMIN_DSN} is not reachable ({exc})") from exc
            self.raw_dsn = pg_dsn(self.database)
            self.db_url = "postgresql+asyncpg://" + self.raw_dsn.split("://", 1)[1]
        else:
            path = self.workdir / f"{self.label}.db"
            self.raw_dsn = str(path)
            self.db_url = f"sqlite+aiosqlite:///{path}"
        self.migrate()
        return self

    def migrate(self) -> None:
        done = subprocess.run(
            cli("migrate"), env=self.env(), capture_output=True, cwd=ROOT, timeout=120
        )
        if done.returncode != 0:
            raise NotRun(f"`discount-codes migrate` failed: {done.stderr.decode()[-600:]}")

    def destroy(self) -> None:
        for proc in list(self.procs):
            self.stop(proc)
        self.api = None
        if self.backend == "postgresql" and self.database:
            with suppress(Exception):
                _run_async(_pg_admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISCOUNT_CODES_")}
        env.update(
            DISCOUNT_CODES_DATABASE_URL=self.db_url,
            DISCOUNT_CODES_DATA_DIR=str(self.data_dir),
            DISCOUNT_CODES_DEV="true",
            DISCOUNT_CODES_WEBHOOK_ALLOW_PRIVATE_URLS="true",
            DISCOUNT_CODES_LOG_LEVEL="WARNING",
            DISCOUNT_CODES_LOG_FORMAT="json",
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def spawn(self, name: str, argv: list[str], **env: str) -> Proc:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                env=self.env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        proc = Proc(name, process, log_path)
        self.procs.append(proc)
        self.sampler.watch(name, proc.pid)
        return proc

    def stop(self, proc: Proc, sig: int = signal.SIGTERM) -> None:
        proc.stop(sig)
        self.sampler.forget(proc.name)
        if proc in self.procs:
            self.procs.remove(proc)

    # -- the service --

    def start_api(
        self, processes: int = 1, *, dev: bool = True, worker: bool = False, **env: str
    ) -> Api:
        """``serve --no-worker`` (or with the worker in every API process; ``--dev`` unless
        ``dev=False``: then ``env`` must name a verification key, see ``benchmarks.es256``);
        one API at a time (stops another one first). Returns once every API process
        serves, not only the first."""
        key = (processes, dev, worker, tuple(sorted(env.items())))
        if self.api is not None and self.api.key == key and self.api.proc.alive():
            return self.api
        self.stop_api()
        port = free_port()
        argv = cli("serve", "--port", str(port))
        if not worker:
            argv.append("--no-worker")
        if dev:
            argv.append("--dev")
        if processes > 1:
            argv += ["--workers", str(processes)]
        name = f"{self.label}-api{processes}{'w' if worker else ''}{'' if dev else '-prod'}"
        proc = self.spawn(name, argv, **env)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc)
        wait_every_process(url, proc, processes)
        self.api = Api(url, proc, processes, key, worker)
        return self.api

    def stop_api(self) -> None:
        if self.api is not None:
            self.stop(self.api.proc)
            self.api = None

    def start_worker(self, name: str = "worker", **env: str) -> Proc:
        proc = self.spawn(f"{self.label}-{name}", cli("worker"), **env)
        time.sleep(0.2)
        if not proc.alive():
            raise NotRun(f"`discount-codes worker` exited at once: {proc.tail(600)}")
        return proc

    def start_receiver(self, fail_first_rate: float = 0.0, delay_s: float = 0.0) -> Receiver:
        """A receiver process; with ``delay_s`` every call is answered that much later."""
        port = free_port()
        argv = [sys.executable, "-m", "benchmarks.receiver", "--port", str(port)]
        argv += ["--fail-first-rate", str(fail_first_rate)]
        name = f"{self.label}-receiver"
        if delay_s:
            argv += ["--delay-s", str(delay_s)]
            name += f"-slow{delay_s:g}s"
        proc = self.spawn(name, argv)
        receiver = Receiver(f"http://127.0.0.1:{port}", proc)
        receiver.wait_ready()
        return receiver

    @contextmanager
    def running(self, proc: Proc) -> Iterator[Proc]:
        try:
            yield proc
        finally:
            self.stop(proc)

    # -- child processes (load generators and raw baselines) --

    def child(self, kind: str, spec: dict[str, Any], *, timeout: float = 900) -> dict[str, Any]:
        """Run ``python -m benchmarks.child`` with ``spec`` to the end; its JSON answer, with
        the child's peak RSS under ``peak_rss``."""
        return self.finish_child(self.start_child(kind, spec), timeout=timeout)

    def start_child(self, kind: str, spec: dict[str, Any]) -> Child:
        tag = uuid.uuid4().hex[:6]
        spec_path = self.workdir / f"child-{kind}-{tag}.json"
        out_path = self.workdir / f"child-{kind}-{tag}.out.json"
        spec_path.write_text(json.dumps({"kind": kind, **spec}))
        argv = [sys.executable, "-m", "benchmarks.child", str(spec_path), str(out_path)]
        return Child(kind, self.spawn(f"{self.label}-child-{kind}-{tag}", argv), out_path)

    def finish_child(self, child: Child, *, timeout: float = 900) -> dict[str, Any]:
        proc = child.proc
        try:
            proc.process.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.stop(signal.SIGKILL)
            raise RuntimeError(f"{child.kind} did not finish within {timeout:.0f} s") from None
        finally:
            peak = self.sampler.peak.get(proc.name, 0)
            self.stop(proc)
        if proc.process.returncode != 0 or not child.out_path.exists():
            last = [line for line in proc.tail(3000).splitlines() if line.strip()][-1:]
            raise RuntimeError(
                f"{child.kind} exited with {proc.process.returncode}: {' '.join(last)} "
                f"(log: {proc.log_path})"
            )
        answer: dict[str, Any] = json.loads(child.out_path.read_text())
        answer["peak_rss"] = peak
        return answer


@dataclass
class Child:
    kind: str
    proc: Proc
    out_path: Path


@dataclass
class Receiver:
    """The webhook receiver process (``benchmarks.receiver``) and its control routes."""

    url: str
    proc: Proc

    def hook_url(self, path: str = "hooks") -> str:
        return f"{self.url}/{path}"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise NotRun(f"webhook receiver exited: {self.proc.tail(600)}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/_count", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)
        raise NotRun("webhook receiver did not start")

    def count(self, prefix: str = "") -> dict[str, int]:
        """Calls, failed calls and distinct deliveries answered 200 (to paths under
        ``prefix``): cheap to ask while deliveries arrive, unlike ``records``."""
        answer: dict[str, int] = httpx.get(
            f"{self.url}/_count", params={"prefix": prefix}, timeout=10
        ).json()
        return answer

    def wait_delivered(self, prefix: str, expected: int, deadline: float) -> None:
        """Until ``expected`` distinct deliveries under ``prefix`` were answered 200, or the
        monotonic ``deadline`` passed; asks the count, not the records."""
        while self.count(prefix)["delivered"] < expected and time.monotonic() < deadline:
            time.sleep(0.2)

    def records(self) -> list[dict[str, Any]]:
        """One record per call: ``at`` (wall clock), ``id`` (webhook-id), ``type``,
        ``claim_id``, ``status`` (what we answered), ``path``."""
        answer: list[dict[str, Any]] = httpx.get(f"{self.url}/_records", timeout=60).json()
        return answer

    def reset(self) -> None:
        httpx.post(f"{self.url}/_reset", timeout=10)

    def verify_with(self, path: str, secret: str) -> None:
        """Calls to ``path`` (e.g. ``/hooks``) are verified with ``secret`` from now on."""
        httpx.post(f"{self.url}/_secret", content=f"{path} {secret}", timeout=10)

    def set_fail_rate(self, rate: float) -> None:
        httpx.post(f"{self.url}/_fail-first-rate", content=str(rate), timeout=10)


def query(stack: Stack, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """A few rows from the stack's store, for the checks after a run (``$1`` placeholders;
    rewritten to ``?`` for SQLite)."""
    if stack.backend == "postgresql":

        async def fetch() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(stack.raw_dsn, timeout=10)
            try:
                return [tuple(r) for r in await conn.fetch(sql, *args)]
            finally:
                await conn.close()

        result: list[tuple[Any, ...]] = _run_async(fetch())
        return result
    import re
    import sqlite3

    conn = sqlite3.connect(stack.raw_dsn, timeout=30)
    try:
        return [tuple(r) for r in conn.execute(re.sub(r"\$(\d+)", r"?\1", sql), args).fetchall()]
    finally:
        conn.close()


def pg_free_connections() -> tuple[int, int]:
    """(connections free now, max_connections) of the PostgreSQL server."""

    async def fetch() -> tuple[int, int]:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            row = await conn.fetchrow(
                "SELECT current_setting('max_connections')::int AS max, count(*) AS used "
                "FROM pg_stat_activity"
            )
            return int(row["max"]) - int(row["used"]), int(row["max"])
        finally:
            await conn.close()

    result: tuple[int, int] = _run_async(fetch())
    return result


def wait_for_pg_connections(needed: int, timeout: float) -> None:
    """Other users of the same PostgreSQL (tests running beside us) may hold most of its
    connections; wait for ``needed`` free ones, or say clearly why the run cannot go on."""
    deadline = time.monotonic() + timeout
    while True:
        free, most = pg_free_connections()
        if free >= needed:
            return
        if time.monotonic() > deadline:
            raise NotRun(
                f"PostgreSQL has {free} of {most} connections free and this run needs "
                f"{needed} (other clients hold the rest; max_connections = {most})"
            )
        time.sleep(1.0)
