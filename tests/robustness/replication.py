"""A PostgreSQL primary and a streaming standby made for one test: ``initdb`` and
``pg_basebackup -R`` run as the ``postgres`` OS user, each node on a free port of
127.0.0.1 with its unix socket in the pair's own directory. The test kills the primary
(``pg_ctl stop -m immediate``: what a crash does), promotes the standby (what a failover
manager does) and reads what survived from the new primary.

The standby streams through a ``TcpProxy`` the test holds: ``freeze()`` stops the WAL
on its way (a standby lagging behind, a link dropping packets), which is what makes an
asynchronous standby lose commits the primary already acknowledged."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg
import pytest

from ..conftest import REQUIRE_SERVICES, free_port, poll, refuse_in_fast_tier
from .helpers import TcpProxy

PG_BIN = Path(os.environ.get("DISCOUNT_CODES_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"
DATABASE = "discount_codes"


def require_pg_bin() -> None:
    refuse_in_fast_tier("A PostgreSQL pair")
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_basebackup").exists():
        message = f"PostgreSQL's server binaries are not under {PG_BIN}"
        if REQUIRE_SERVICES:
            pytest.fail(message + "; DISCOUNT_CODES_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message)


def _as_postgres(*argv: str) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run the command as ``postgres``."""
    if os.geteuid() == 0:
        return ["runuser", "-u", OS_USER, "--", *argv]
    return list(argv)


class Node:
    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.data = root / name
        self.log = root / f"{name}.log"
        self.socket_dir = root
        self.port = free_port()

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql+asyncpg://{OS_USER}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = DATABASE) -> str:
        return f"postgresql://{OS_USER}@127.0.0.1:{self.port}/{database}"

    async def pg_ctl(self, *args: str, check: bool = True) -> None:
        await _run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args), check=check)

    def configure(self, **settings: str) -> None:
        """Appended to postgresql.conf: a later line wins over an earlier one."""
        lines = [f"{key} = '{value}'" for key, value in settings.items()]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n" + "\n".join(lines) + "\n")

    async def start(self) -> None:
        await self.pg_ctl("-l", str(self.log), "-w", "-t", "60", "start")

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Pair:
    """``synchronous``: the primary waits for the standby to have flushed each commit's WAL
    before it answers the commit (``synchronous_standby_names = '*'``)."""

    def __init__(self, synchronous: bool) -> None:
        self.synchronous = synchronous
        self.root = Path(tempfile.mkdtemp(prefix="dc-failover-"))
        if os.geteuid() == 0:
            entry = pwd.getpwnam(OS_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.primary = Node(self.root, "primary")
        self.standby = Node(self.root, "standby")
        self.link = TcpProxy(f"postgresql://127.0.0.1:{self.primary.port}/")

    @property
    def url(self) -> str:
        """The service's multi-host URL, in SQLAlchemy's asyncpg form."""
        return (
            f"postgresql+asyncpg://{OS_USER}@/{DATABASE}?host=127.0.0.1:{self.primary.port}"
            f"&host=127.0.0.1:{self.standby.port}&target_session_attrs=read-write"
        )

    async def start(self) -> None:
        """Both nodes up, the database created, the standby streaming (and, synchronous,
        counted as the synchronous standby)."""
        await _run(
            _as_postgres(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.primary.data),
                "--auth=trust",
                "--username",
                OS_USER,
                "--no-sync",
            )
        )
        base = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "max_connections": "200",
            "shared_buffers": "32MB",
            "wal_level": "replica",
            "max_wal_senders": "4",
            "hot_standby": "on",
            "wal_receiver_status_interval": "1s",
            # A process crash leaves the OS's page cache intact: syncing to disk proves
            # nothing here and would only slow a shared machine down.
            "fsync": "off",
        }
        self.primary.configure(**base, port=str(self.primary.port))
        await self.primary.start()
        admin = await asyncpg.connect(self.primary.dsn("postgres"), timeout=10)
        try:
            await admin.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await admin.close()
        await self.link.start()
        await _run(
            _as_postgres(
                str(PG_BIN / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.link.port),
                "-U",
                OS_USER,
                "-D",
                str(self.standby.data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            )
        )
        # Promoted, the standby runs alone: it must not wait for a standby of its own.
        self.standby.configure(port=str(self.standby.port), synchronous_standby_names="")
        await self.standby.start()
        await self._wait_streaming("async")
        if self.synchronous:
            # Only now: with no standby yet, every commit (CREATE DATABASE's too) would wait.
            self.primary.configure(synchronous_standby_names="*")
            await self.primary.pg_ctl("reload")
            await self._wait_streaming("sync")

    async def _wait_streaming(self, sync_state: str) -> None:
        state: str | None = None

        async def streaming() -> bool:
            nonlocal state
            conn = await asyncpg.connect(self.primary.dsn("postgres"), timeout=10)
            try:
                state = await conn.fetchval(
                    "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'"
                )
            finally:
                await conn.close()
            return state == sync_state

        await poll(
            streaming,
            every=0.1,
            what=lambda: f"standby streaming {sync_state} ({state}):\n{self.standby.logs()}",
        )

    async def kill_primary(self) -> None:
        """Every process of the primary ends at once, nothing flushed or said goodbye."""
        await self.primary.pg_ctl("-m", "immediate", "stop")

    async def promote(self) -> None:
        """The standby ends recovery and takes writes (``-w``: once it does)."""
        await self.standby.pg_ctl("-w", "-t", "60", "promote")

    async def stop(self) -> None:
        await self.link.stop()
        for node in (self.primary, self.standby):
            if (node.data / "postmaster.pid").exists():
                await node.pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


async def _run(argv: list[str], *, check: bool = True) -> None:
    """Off the event loop, which may be serving the link the command goes through."""
    done = await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, timeout=120, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}:\n"
            + done.stdout.decode(errors="replace")
            + done.stderr.decode(errors="replace")
        )
