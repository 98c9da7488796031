"""Shared fixtures: real stores (SQLite and PostgreSQL, chosen by the ``backend``
parameter), the app in-process over ASGI, and real ``uvicorn`` processes.

``.ci/run`` sets ``DISCOUNT_CODES_REQUIRE_SERVICES=1``: a missing PostgreSQL or RabbitMQ
then fails the run instead of skipping.

Two tiers: ``make test`` runs everything; ``make test-fast`` (``pytest --fast``) runs the
tests that need no service, chosen by the rule in ``pytest_collection_modifyitems``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from discount_codes.app import create_app
from discount_codes.auth import mint_dev_token
from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.kit.wakeup import raw_dsn
from discount_codes.migrate import upgrade_to_head
from discount_codes.worker import WorkerContext, run_worker

from .sweep import SWEEPER

REQUIRE_SERVICES = os.environ.get("DISCOUNT_CODES_REQUIRE_SERVICES") == "1"
PG_ADMIN_DSN = os.environ.get(
    "DISCOUNT_CODES_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("DISCOUNT_CODES_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
#: Debian's Chromium, driven headless by Playwright; a browser is never downloaded.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, on its own loop in a thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def require_chromium() -> None:
    refuse_in_fast_tier("Chromium")
    if not Path(CHROMIUM).exists():
        if REQUIRE_SERVICES:
            pytest.fail("Debian's chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium not installed")


def service_missing(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if REQUIRE_SERVICES:
        pytest.fail(message + "; DISCOUNT_CODES_REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(message)


# --- two tiers ------------------------------------------------------------------------------

#: Fixtures that reach a service (a database, the broker, PgBouncer, a server process). A
#: test that asks for none of them, directly or through its fixtures, and is not marked
#: ``slow``, ``browser`` or ``services`` is in the fast tier.
SERVICE_FIXTURES = frozenset(
    {"backend", "db_url", "sqlite_url", "pg_url", "amqp_url", "pgbouncer", "live_server"}
)
NOT_FAST_MARKS = ("slow", "browser", "services")
#: The whole fast tier (no path, ``-k`` or ``-m`` given) holds at least this many tests and
#: runs within this many seconds; fewer or slower fails the run, so the tier cannot shrink
#: to nothing or grow slow unnoticed.
FAST_TIER_AT_LEAST = 120
FAST_TIER_BUDGET_S = 60.0
_fast_tier = False


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="the fast tier only: tests that need no service (make test-fast)",
    )


def pytest_configure(config: pytest.Config) -> None:
    global _fast_tier
    _fast_tier = bool(config.getoption("fast"))
    config.stash[_started_key] = time.monotonic()


# --- waiting for a condition ----------------------------------------------------------------


async def poll(
    check: Callable[[], Awaitable[Any] | Any],
    *,
    timeout: float = 60,
    every: float = 0.05,
    what: str | Callable[[], str] = "",
) -> Any:
    """Wait until ``check()`` (sync or async) returns something truthy, and return it; fail
    after ``timeout`` seconds, generous because CI is slow. The suite's one way to wait:
    a condition, never a fixed sleep. ``what`` (or a function giving it, e.g. a log's tail)
    says what was awaited when it fails."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(
                f"condition not reached within {timeout}s" + (said and f": {said}")
            )
        await asyncio.sleep(every)


def wait_until(
    check: Callable[[], Any],
    *,
    timeout: float = 60,
    every: float = 0.05,
    what: str | Callable[[], str] = "",
) -> Any:
    """``poll`` for a sync test or fixture (its own loop, in a thread); ``check`` is sync."""
    return run_sync(poll(check, timeout=timeout, every=every, what=what))


def refuse_in_fast_tier(what: str) -> None:
    """Every helper that reaches a service calls this first: in the fast tier the test fails
    here, so a test that reaches one without asking a service fixture is caught at once
    instead of slowing the tier down (mark it ``services``)."""
    if _fast_tier:
        pytest.fail(
            f"{what} reached in the fast tier: ask for a service fixture or mark the test "
            "`services`",
            pytrace=False,
        )


def is_fast(item: pytest.Item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    return not fixtures & SERVICE_FIXTURES and not any(
        item.get_closest_marker(name) for name in NOT_FAST_MARKS
    )


@pytest.hookimpl(tryfirst=True)  # before -m reads the ``fast`` mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if is_fast(item):
            item.add_marker(pytest.mark.fast)
    if not _fast_tier:
        return
    slow = [item for item in items if not item.get_closest_marker("fast")]
    items[:] = [item for item in items if item.get_closest_marker("fast")]
    config.hook.pytest_deselected(items=slow)
    whole = not config.option.file_or_dir and not config.option.keyword
    if whole and not config.option.markexpr and len(items) < FAST_TIER_AT_LEAST:
        raise pytest.UsageError(
            f"the fast tier collected {len(items)} tests, fewer than {FAST_TIER_AT_LEAST}: "
            "did a shared fixture start needing a service?"
        )


_started_key = pytest.StashKey[float]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not _fast_tier or config.option.file_or_dir or config.option.keyword:
        return
    took = time.monotonic() - config.stash[_started_key]
    if took > FAST_TIER_BUDGET_S and session.testscollected:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"\nthe fast tier took {took:.0f} s, over its {FAST_TIER_BUDGET_S:.0f} s budget: "
                "mark what made it slow `slow` (see --durations=10)",
                red=True,
            )


# --- stores --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder per run: holds the dev signing key that all servers share."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    refuse_in_fast_tier("The suite's database")
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
    upgrade_to_head(url)
    SWEEPER.add(url)
    return url


def _pg_url(database: str) -> str:
    rest = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{rest}/{database}"


def create_pg_database(prefix: str = "dc_test") -> tuple[str, Callable[[], None]]:
    """A fresh PostgreSQL database at schema head, and a function that drops it."""
    refuse_in_fast_tier("PostgreSQL")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        run_sync(create())
    except (OSError, asyncpg.PostgresError) as exc:
        service_missing("PostgreSQL", exc)
    url = _pg_url(name)
    upgrade_to_head(url)
    return url, lambda: run_sync(drop())


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    url, drop = create_pg_database()
    SWEEPER.add(url)
    yield url
    SWEEPER.forget(url)
    drop()


@pytest.fixture(autouse=True)
def _endpoints_do_not_outlive_their_test() -> Iterator[None]:
    """``tests/sweep.py``: a later test's worker must not deliver this test's events."""
    yield
    SWEEPER.sweep()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


#: ``pytestmark = THROUGH_PGBOUNCER``: the module's tests also run with the service behind a
#: real PgBouncer in transaction pooling mode (the claim, generation and webhook suites).
THROUGH_PGBOUNCER = pytest.mark.parametrize(
    "backend", ["sqlite", "postgresql", "pgbouncer"], indirect=True
)
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@dataclass
class PgBouncer:
    """A PgBouncer process in transaction pooling mode in front of the test PostgreSQL."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_pgbouncer(workdir: Path, *, pool_size: int = 20) -> PgBouncer:
    """Debian's ``pgbouncer`` (1.18: no prepared-statement support) on a free port, every
    database name routed to the test PostgreSQL, ``pool_mode = transaction``."""
    refuse_in_fast_tier("PgBouncer")
    if not Path(PGBOUNCER).exists():
        if REQUIRE_SERVICES:
            pytest.fail("Debian's pgbouncer is not installed (.ci/run installs it)")
        pytest.skip("pgbouncer not installed")
    pg = PG_ADMIN_DSN.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, pg_port = pg.partition(":")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    ini = workdir / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = host={host} port={pg_port or 5432} user=postgres\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = any\npool_mode = transaction\n"
        f"default_pool_size = {pool_size}\nmax_client_conn = 1000\n"
        "logfile =\npidfile =\n" + ("user = postgres\n" if os.geteuid() == 0 else "")
        # PgBouncer refuses to run as root; CI runs as root.
    )
    log_path = workdir / "pgbouncer.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([PGBOUNCER, str(ini)], stdout=log, stderr=subprocess.STDOUT)
    bouncer = PgBouncer(port, process, log_path)

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited {process.returncode}: {log_path.read_text()}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        return False

    try:
        wait_until(
            listening, timeout=30, what=lambda: f"pgbouncer listening: {log_path.read_text()}"
        )
    except AssertionError:
        bouncer.stop()
        raise
    return bouncer


@pytest.fixture(scope="session")
def pgbouncer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    bouncer = start_pgbouncer(tmp_path_factory.mktemp("pgbouncer"))
    yield bouncer
    bouncer.stop()


@pytest.fixture
def one_server(tmp_path: Path) -> Iterator[PgBouncer]:
    """A PgBouncer with ONE server connection: every client's transactions run on it, so
    whatever a client leaves on the server is seen by the next."""
    bouncer = start_pgbouncer(tmp_path / "pgbouncer", pool_size=1)
    yield bouncer
    bouncer.stop()


@pytest.fixture
def own_pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database of this test's own (direct URL), dropped after it."""
    direct, drop = create_pg_database("dc_own")
    yield direct
    drop()


async def prepared_on_server(bouncer: PgBouncer, database: str) -> list[str]:
    """The prepared statements left on the server behind ``bouncer`` (ONE server: what a
    client left there is what the next one would collide with)."""
    conn = await asyncpg.connect(raw_dsn(bouncer.url(database)), statement_cache_size=0)
    try:
        rows = await conn.fetch("SELECT name FROM pg_prepared_statements")
    finally:
        await conn.close()
    return [r["name"] for r in rows]


@dataclass(frozen=True)
class PooledDatabase:
    url: str  # through PgBouncer
    direct_url: str


@pytest.fixture(scope="session")
def pgbouncer_db(pgbouncer: PgBouncer) -> Iterator[PooledDatabase]:
    """A fresh database (migrated on the direct URL) and its URL through PgBouncer."""
    direct, drop = create_pg_database("dc_pgb")
    SWEEPER.add(direct)
    yield PooledDatabase(pgbouncer.url(direct.rsplit("/", 1)[1]), direct)
    SWEEPER.forget(direct)
    drop()


def backend_overrides(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings the backend needs beyond the URL (the pooler and its direct URL)."""
    if backend != "pgbouncer":
        return {}
    pooled: PooledDatabase = request.getfixturevalue("pgbouncer_db")
    return {"database_pooler": "pgbouncer", "database_direct_url": pooled.direct_url}


@pytest.fixture(scope="session")
def db_url(backend: str, request: pytest.FixtureRequest) -> str:
    if backend == "pgbouncer":
        pooled: PooledDatabase = request.getfixturevalue("pgbouncer_db")
        return pooled.url
    return str(request.getfixturevalue("pg_url" if backend == "postgresql" else "sqlite_url"))


@pytest.fixture(scope="session")
def amqp_url() -> str:
    refuse_in_fast_tier("RabbitMQ")

    async def probe() -> None:
        import aio_pika

        conn = await aio_pika.connect_robust(AMQP_URL, timeout=5)
        await conn.close()

    try:
        run_sync(probe())
    except Exception as exc:
        service_missing("RabbitMQ", exc)
    return AMQP_URL


# --- the app in-process ---------------------------------------------------------------------


def make_settings(db_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "dev": True,
        "data_dir": data_dir,
        "database_url": db_url,
        "run_worker": False,
        "webhook_allow_private_urls": True,
        "log_format": "console",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def settings(db_url: str, data_dir: Path, backend: str, request: pytest.FixtureRequest) -> Settings:
    return make_settings(db_url, data_dir, **backend_overrides(backend, request))


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings) as app:
        yield app


@pytest.fixture(scope="session")
def db(app: FastAPI) -> Database:
    database: Database = app.state.db
    return database


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as c:
        yield c


@asynccontextmanager
async def worker_running(
    settings: Settings, db: Database, context: type[WorkerContext] = WorkerContext
) -> AsyncIterator[WorkerContext]:
    """The worker's loops, in this process, for as long as the block runs."""
    ctx = context(settings=settings, db=db)
    task = asyncio.create_task(run_worker(ctx))
    try:
        yield ctx
    finally:
        ctx.stop.set()
        await asyncio.wait_for(task, timeout=30)


# --- identities -----------------------------------------------------------------------------


@dataclass
class Tokens:
    settings: Settings

    def token(
        self,
        sub: str | None = None,
        *,
        brands: list[str] | None = None,
        email: str | None = None,
        name: str | None = None,
        ttl: int = 3600,
    ) -> str:
        return mint_dev_token(
            self.settings,
            sub or f"user-{uuid.uuid4().hex[:12]}",
            email=email,
            name=name,
            brands=brands,
            ttl=ttl,
        )

    def headers(self, sub: str | None = None, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, **kwargs)}"}

    def brand(self, brand_id: str) -> dict[str, str]:
        return self.headers(f"staff-of-{brand_id}", brands=[brand_id])

    def shopper(self, user_id: str | None = None) -> dict[str, str]:
        uid = user_id or f"shopper-{uuid.uuid4().hex[:12]}"
        return self.headers(uid, email=f"{uid}@example.com", name=f"Shopper {uid}")


@pytest.fixture(scope="session")
def tokens(data_dir: Path) -> Tokens:
    return Tokens(make_settings("sqlite+aiosqlite:///unused.db", data_dir))


@pytest.fixture
def brand_id() -> str:
    """A fresh brand per test, so tests share a database without seeing each other's rows."""
    return f"brand-{uuid.uuid4().hex[:12]}"


# --- real servers -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)


def service_env(db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCOUNT_CODES_")}
    env.update(
        DISCOUNT_CODES_DATABASE_URL=db_url,
        DISCOUNT_CODES_DATA_DIR=str(data_dir),
        DISCOUNT_CODES_DEV="true",
        DISCOUNT_CODES_WEBHOOK_ALLOW_PRIVATE_URLS="true",
        DISCOUNT_CODES_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "discount_codes.cli", *args]


def wait_ready(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 60
) -> None:
    refuse_in_fast_tier("A server process")

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        with suppress(httpx.HTTPError):
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        return False

    try:
        wait_until(
            ready, timeout=timeout, every=0.1, what=lambda: f"ready:\n{log_path.read_text()}"
        )
    except AssertionError:
        process.kill()
        raise


ServerFactory = Callable[..., LiveServer]


@contextmanager
def server_factory(
    db_url: str, data_dir: Path, log_dir: Path, settings: Settings
) -> Iterator[ServerFactory]:
    """Starts ``discount-codes serve`` processes on this database; stops them at the end."""
    started: list[LiveServer] = []
    pooler: dict[str, str] = {}
    if settings.database_pooler and settings.database_direct_url:
        pooler = {
            "DISCOUNT_CODES_DATABASE_POOLER": settings.database_pooler,
            "DISCOUNT_CODES_DATABASE_DIRECT_URL": settings.database_direct_url,
        }

    def start(*args: str, **env: str) -> LiveServer:
        port = free_port()
        log_path = log_dir / f"server-{port}.log"
        full_env = service_env(db_url, data_dir, **{**pooler, **env})
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                cli("serve", "--port", str(port), *args),
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log_path)
        server = LiveServer(url, process, log_path, full_env)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def live_server(
    db_url: str, data_dir: Path, tmp_path: Path, settings: Settings
) -> Iterator[ServerFactory]:
    """Starts ``discount-codes serve`` processes on this test's database; stops them after."""
    with server_factory(db_url, data_dir, tmp_path, settings) as start:
        yield start


async def gather_limited(n: int, coros: list[Awaitable[T]]) -> list[T]:
    sem = asyncio.Semaphore(n)

    async def one(c: Awaitable[T]) -> T:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))
