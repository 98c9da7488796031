"""Why a claim now and then fails with "connection reset by peer" and no server log line.

``python -m benchmarks.keepalive_race [--connections 300] [--spread-ms 40]``

Suspect: uvicorn closes a keep-alive connection idle for ``timeout_keep_alive`` (5 s by
default; ``discount-codes serve`` does not set it), and httpx reuses an idle pooled
connection for up to ``keepalive_expiry`` (5 s by default): the same 5 s. A client that
reuses a connection idle for about 5 s sends its request just as the server closes it;
the server closes with the request unread in its socket, the kernel answers with RST, and
the app never saw a request to log. The busier the server's event loop, the later its
keep-alive timer runs and the wider the window.

Each of ``--connections`` connections sends a request, waits idle for 5 s + delta (delta
spread evenly over +-``--spread-ms``), then, like httpx, checks that the server has not
closed it (EOF seen) and sends a second request on it, which 404s (``GET /after-idle``),
so the server's access log counts exactly the second requests it saw. Meanwhile wrk
keeps both API processes busy with ``GET /readyz`` (a database round trip each). Run
against ``discount-codes serve --workers 2`` as it is, then against the same app with
uvicorn's ``--timeout-keep-alive 75`` (the proposed fix: longer than any client's reuse
window, so the client always closes first). TCP listen-queue overflow counters
(``nstat``) are read around each run to rule out the backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.services import (
    Proc,
    RssSampler,
    Stack,
    _wait_ready,
    cli,
    free_port,
    wait_every_process,
)

KEEP_ALIVE_S = 5.0
PROBE = b"GET /after-idle HTTP/1.1\r\nHost: bench\r\n\r\n"
FIRST = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"


async def _read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def _one(host: str, port: int, idle_s: float) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await _read_answer_after(writer, reader, FIRST)
        await asyncio.sleep(idle_s)
        if reader.at_eof() or writer.is_closing():
            return "closed by server before reuse (client saw it: safe)"
        try:
            status = await _read_answer_after(writer, reader, PROBE)
        except ConnectionResetError:
            return "connection reset by peer"
        except (asyncio.IncompleteReadError, BrokenPipeError):
            return "server closed without an answer"
        return f"answered {status}"
    finally:
        writer.close()


async def _read_answer_after(
    writer: asyncio.StreamWriter, reader: asyncio.StreamReader, request: bytes
) -> int:
    writer.write(request)
    await writer.drain()
    return await _read_answer(reader)


async def _sweep(url: str, connections: int, spread_ms: float) -> list[tuple[float, str]]:
    host, port = url.rsplit("//", 1)[1].split(":")
    deltas = [
        (-spread_ms + 2 * spread_ms * i / max(1, connections - 1)) / 1000
        for i in range(connections)
    ]

    async def timed(delta: float) -> tuple[float, str]:
        return delta, await _one(host, int(port), KEEP_ALIVE_S + delta)

    # Start the connections over 1 s, not all in one instant.
    tasks = []
    for i, delta in enumerate(deltas):
        tasks.append(asyncio.create_task(timed(delta)))
        if i % 30 == 29:
            await asyncio.sleep(0.1)
    return list(await asyncio.gather(*tasks))


def _nstat() -> dict[str, int]:
    done = subprocess.run(["nstat", "-az", "-j"], capture_output=True, text=True)
    if done.returncode != 0:
        return {}
    counters = json.loads(done.stdout).get("kernel", {})
    keys = ("TcpExtListenOverflows", "TcpExtListenDrops", "TcpEstabResets", "TcpOutRsts")
    return {k: int(counters.get(k, 0)) for k in keys}


def _start(stack: Stack, variant: str) -> tuple[Proc, str]:
    port = free_port()
    env = {"DISCOUNT_CODES_LOG_LEVEL": "INFO", "DISCOUNT_CODES_RUN_WORKER": "false"}
    if variant == "serve":
        argv = [*cli("serve", "--dev", "--no-worker", "--port", str(port)), "--workers", "2"]
    else:  # the same app, uvicorn told to keep idle connections for 75 s
        argv = [sys.executable, "-m", "uvicorn", "discount_codes.app:create_app", "--factory"]
        argv += ["--port", str(port), "--workers", "2", "--loop", "uvloop"]
        argv += ["--http", "httptools", "--no-access-log", "--timeout-keep-alive", "75"]
    proc = stack.spawn(f"race-{variant}", argv, **env)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc)
    wait_every_process(url, proc, 2)
    return proc, url


def run_variant(stack: Stack, variant: str, connections: int, spread_ms: float) -> dict[str, Any]:
    proc, url = _start(stack, variant)
    try:
        before = _nstat()
        load = None
        if shutil.which("wrk"):
            load = subprocess.Popen(
                ["wrk", "-t1", "-c32", "-d9s", f"{url}/readyz"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        started = time.monotonic()
        results = asyncio.run(_sweep(url, connections, spread_ms))
        elapsed = time.monotonic() - started
        if load is not None:
            load.wait(30)
        after = _nstat()
    finally:
        stack.stop(proc)
    logged = sum(
        1
        for line in proc.log_path.read_text(errors="replace").splitlines()
        if '"route": "<unmatched>"' in line or '"route":"<unmatched>"' in line
    )
    outcomes = Counter(o for _, o in results)
    failing = sorted(d for d, o in results if o in FAILURES)
    return {
        "variant": variant,
        "outcomes": dict(outcomes),
        "second_requests_logged_by_server": logged,
        "second_requests_answered": sum(v for k, v in outcomes.items() if k.startswith("answered")),
        "failing_deltas_ms": [round(d * 1000, 1) for d in failing],
        "nstat_delta": {k: after.get(k, 0) - before.get(k, 0) for k in before},
        "elapsed_s": elapsed,
    }


FAILURES = {"connection reset by peer", "server closed without an answer"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.keepalive_race")
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--spread-ms", type=float, default=40.0)
    parser.add_argument("--variant", action="append", choices=["serve", "keepalive75"])
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dc-race-"))
    out = []
    with RssSampler() as sampler:
        stack = Stack("postgresql", workdir / "pg", "race", sampler, workdir / "data")
        try:
            stack.create()
            for variant in args.variant or ["serve", "keepalive75"]:
                out.append(run_variant(stack, variant, args.connections, args.spread_ms))
                print(json.dumps(out[-1]), flush=True)
        finally:
            stack.destroy()
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
