"""``make demo``: the whole story on one machine, end to end, through the public API.

Starts ``discount-codes serve --dev`` on the embedded default (SQLite in a fresh folder)
and a brand's webhook receiver that verifies every signature with the reference Standard
Webhooks library; then a brand creates a campaign, has codes generated (progress bar),
many shoppers claim at once, some bring their code to the till, and the summary tells it
as a brand would (demo_story.py): codes made, shoppers served, webhooks verified, codes
redeemed with their discount, conversion. The service keeps running after it, so the
links it prints work, until Ctrl-C (``--exit`` for CI). Run it as
``python -m discount_codes.demo [--quick]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from discount_codes.auth import ensure_dev_key, mint_dev_token
from discount_codes.config import DEFAULT_AUDIENCE, DEV_ISSUER, Settings
from discount_codes.demo_story import (
    DISCOUNT,
    DemoResult,
    ShopperVisit,
    redeem_at_till,
    summary,
)
from discount_codes.webhook.receiver import Receiver

BRAND_ID = "demo-brand"
FULL = {"codes": 100_000, "shoppers": 1_000}
QUICK = {"codes": 5_000, "shoppers": 200}
#: Share of shoppers who ask a second time: they must get the very same code back.
REPEAT_SHARE = 0.1
READY_S = 60
#: Where the demo's receiver takes the brand's webhooks.
RECEIVER_PATH = "/webhooks/discount-codes"

console = Console(highlight=False)


# --- the service -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dev_settings(data_dir: Path) -> Settings:
    """The settings the served process reads, for minting tokens it trusts."""
    return Settings(
        dev=True,
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'discount-codes.db'}",
        auth_public_key_file=None,
        auth_jwks_url=None,
        auth_issuer=DEV_ISSUER,
        auth_audience=DEFAULT_AUDIENCE,
    )


@dataclass
class Served:
    url: str
    log_path: Path
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def service(data_dir: Path, port: int) -> Iterator[Served]:
    """``discount-codes serve --dev`` on SQLite under ``data_dir``, stopped on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCOUNT_CODES_")}
    env.update(
        DISCOUNT_CODES_DATA_DIR=str(data_dir),
        DISCOUNT_CODES_WEBHOOK_ALLOW_PRIVATE_URLS="true",  # the receiver is on 127.0.0.1
        DISCOUNT_CODES_LOG_LEVEL="WARNING",
    )
    log_path = data_dir / "service.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "discount_codes.cli", "serve", "--dev", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield Served(f"http://127.0.0.1:{port}", log_path, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


async def wait_ready(client: httpx.AsyncClient, served: Served) -> None:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise DemoError(
                f"the service exited with status {served.process.returncode}; see {served.log_path}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/readyz", timeout=2)).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise DemoError(f"the service did not get ready in {READY_S} s; see {served.log_path}")


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


def expect(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    if response.status_code not in statuses:
        raise DemoError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return body


# --- the story ---------------------------------------------------------------------------


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
    )


async def generate(
    client: httpx.AsyncClient, staff: dict[str, str], campaign_id: str, n: int
) -> None:
    answer = expect(
        await client.post(
            f"/v1/campaigns/{campaign_id}/code-batches",
            json={"count": n, "prefix": "DEMO"},
            headers={**staff, "Idempotency-Key": uuid.uuid4().hex},
        ),
        201,
        202,
    )
    with progress() as bar:
        task = bar.add_task("generating codes", total=answer["requested"])
        while True:
            bar.update(task, completed=answer["generated"])
            if answer["status"] == "completed":
                return
            if answer["status"] == "failed":
                raise DemoError(f"code generation failed: {answer['error']}")
            await asyncio.sleep(0.25)
            answer = expect(
                await client.get(f"/v1/code-batches/{answer['id']}", headers=staff), 200
            )


async def claim(
    client: httpx.AsyncClient, campaign_id: str, token: str, user_id: str
) -> ShopperVisit:
    """One shopper asks for a code. A claim is safe to repeat (one code per shopper), so a
    dropped connection or a busy database (503) is simply asked again."""
    response: httpx.Response | None = None
    retries = -1
    for attempt in range(10):
        retries += 1
        try:
            response = await client.post(
                f"/v1/campaigns/{campaign_id}/claims",
                json={"share_contact": True},
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.TransportError:
            await asyncio.sleep(0.2 * (attempt + 1))
            continue
        if response.status_code != 503:
            break
        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
    if response is None:
        return ShopperVisit(user_id, 0, problem="connection failed", retries=retries)
    body = response.json()
    if response.status_code in (200, 201):
        return ShopperVisit(
            user_id, response.status_code, body["code"], body["id"], retries=retries
        )
    return ShopperVisit(
        user_id, response.status_code, problem=str(body.get("type")), retries=retries
    )


async def shoppers_claim(
    client: httpx.AsyncClient, settings: Settings, campaign_id: str, n: int
) -> tuple[list[ShopperVisit], int, int]:
    users = [f"demo-shopper-{i:05d}" for i in range(n)]
    tokens = {
        u: mint_dev_token(settings, u, email=f"{u}@example.com", name=f"Shopper {u[-5:]}")
        for u in users
    }
    start = asyncio.Event()
    with progress() as bar:
        task = bar.add_task(f"{n:,} shoppers claiming", total=n)

        async def one(user: str) -> ShopperVisit:
            await start.wait()  # every shopper is connected and waiting: then all at once
            result = await claim(client, campaign_id, tokens[user], user)
            bar.advance(task)
            return result

        running = [asyncio.create_task(one(u)) for u in users]
        await asyncio.sleep(0)
        start.set()
        claims = await asyncio.gather(*running)
    # Some shoppers ask again: one code per shopper, so they get the same one back (200).
    again = [c for c in claims if c.code][: max(1, int(n * REPEAT_SHARE))]
    repeats = await asyncio.gather(
        *(claim(client, campaign_id, tokens[c.user_id], c.user_id) for c in again)
    )
    same = sum(1 for first, second in zip(again, repeats, strict=True) if second.code == first.code)
    return list(claims), same, len(again)


async def wait_for_events(receiver: Receiver, claim_ids: set[str], patience_s: float) -> None:
    """Until every claim's event arrived verified, or ``patience_s`` passed (the summary
    then shows how many are missing)."""

    def delivered() -> set[str]:
        return {
            str(d.data.get("claim_id"))
            for d in receiver.received
            if d.verified and d.type == "discount_code.claimed"
        }

    deadline = time.monotonic() + patience_s
    with progress() as bar:
        task = bar.add_task("webhooks received", total=len(claim_ids))
        while time.monotonic() < deadline:
            got = len(delivered() & claim_ids)
            bar.update(task, completed=got)
            if got == len(claim_ids):
                return
            receiver.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receiver.arrived.wait(), timeout=0.5)


async def feed_size(client: httpx.AsyncClient, staff: dict[str, str]) -> int:
    total, after = 0, None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if after:
            params["after"] = after
        page = expect(
            await client.get(f"/v1/brands/{BRAND_ID}/events", params=params, headers=staff), 200
        )
        total += len(page["items"])
        if not page["next_cursor"]:
            return total
        after = page["next_cursor"]


async def run_story(served: Served, settings: Settings, codes: int, shoppers: int) -> DemoResult:
    base_url = served.url
    receiver = await Receiver(path=RECEIVER_PATH).start()
    limits = httpx.Limits(max_connections=shoppers + 10, max_keepalive_connections=shoppers + 10)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
            await wait_ready(client, served)
            staff_token = mint_dev_token(settings, "demo-staff", brands=[BRAND_ID], ttl=86_400)
            staff = {"Authorization": f"Bearer {staff_token}"}
            endpoint = expect(
                await client.post(
                    f"/v1/brands/{BRAND_ID}/webhook-endpoints",
                    json={"url": receiver.url, "description": "Loyalty programme (demo receiver)"},
                    headers=staff,
                ),
                201,
            )
            receiver.secret = endpoint["secret"]
            console.print(f"webhook endpoint  {receiver.url} (verifies signatures)", soft_wrap=True)
            campaign = expect(
                await client.post(
                    f"/v1/brands/{BRAND_ID}/campaigns",
                    json={
                        "name": "Spring sale",
                        "description": "20% off the spring collection",
                        "discount": DISCOUNT,
                        "terms": "One code per shopper. Share your e-mail and name with the brand.",
                    },
                    headers=staff,
                ),
                201,
            )
            console.print(f"campaign          {campaign['name']} ({campaign['id']})")
            await generate(client, staff, campaign["id"], codes)
            claims, same, repeats = await shoppers_claim(client, settings, campaign["id"], shoppers)
            outcome = DemoResult(codes, claims, same, repeats, receiver, 0, campaign, base_url)
            outcome.till = await redeem_at_till(client, BRAND_ID, staff, outcome.handed_out)
            console.print(f"till              {outcome.till.redeemed:,} codes redeemed with orders")
            await wait_for_events(receiver, outcome.claim_ids, patience_s=max(60.0, shoppers / 10))
            outcome.feed_events = await feed_size(client, staff)
            outcome.campaign = expect(
                await client.get(f"/v1/campaigns/{campaign['id']}", headers=staff), 200
            )
            return outcome
    finally:
        await receiver.stop()


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends the demo as Ctrl-C does: the service is stopped and the folder removed."""
    raise KeyboardInterrupt


@app.command()
def main(
    quick: Annotated[
        bool, typer.Option("--quick", help="5,000 codes and 200 shoppers (for CI).")
    ] = False,
    codes: Annotated[int | None, typer.Option(min=1, max=1_000_000, help="Codes to make.")] = None,
    shoppers: Annotated[int | None, typer.Option(min=1, max=5_000, help="Shoppers.")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port of the service (default: a free one).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Keep the database here (default: a temporary folder, removed after)."),
    ] = None,
    keep_running: Annotated[
        bool | None,
        typer.Option(
            "--keep-running/--exit",
            help="Keep serving the console after the summary until Ctrl-C or SIGTERM "
            "(default), or exit after it (CI).",
        ),
    ] = None,
) -> None:
    """The end-to-end demo: a campaign, its codes, a crowd of shoppers, verified webhooks."""
    size = QUICK if quick else FULL
    n_codes = codes or size["codes"]
    n_shoppers = shoppers or size["shoppers"]
    # The summary's links work only while the service runs: it keeps running unless told to
    # exit (CI), terminal or not.
    stay = keep_running is not False
    folder = data_dir or Path(tempfile.mkdtemp(prefix="discount-codes-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    settings = dev_settings(folder)
    ensure_dev_key(settings.dev_key_path)
    signal.signal(signal.SIGTERM, _interrupt)
    ok = False
    try:
        with service(folder, port or free_port()) as served:
            base_url = served.url
            console.print(
                f"[bold]discount-codes demo[/bold]: {n_codes:,} codes, {n_shoppers:,} shoppers"
            )
            console.print(
                f"service           {base_url} (SQLite in {folder}, dev mode)", soft_wrap=True
            )
            started = time.monotonic()
            outcome = asyncio.run(run_story(served, settings, n_codes, n_shoppers))
            lines, ok = summary(outcome)
            campaign_id = outcome.campaign["id"]
            console.print()
            console.print(f"[bold]Summary[/bold] ({time.monotonic() - started:,.1f} s)")
            for line in lines:
                console.print(f"  {line}", soft_wrap=True)
            if stay:
                console.print(
                    f"  console: {base_url}/console/#/campaigns/{campaign_id}", soft_wrap=True
                )
                console.print(
                    f"  shopper page: {base_url}/console/shop/{campaign_id}", soft_wrap=True
                )
                console.print(f"  till: {base_url}/console/till/{BRAND_ID}", soft_wrap=True)
            console.print(f"  result: {'OK' if ok else 'FAILED'}")
            if not stay:
                console.print(
                    "\nThe service stopped with the demo (--exit); run `make demo` without it "
                    "to browse the console afterwards."
                )
            else:
                console.print(
                    f"\nBrowse the console as brand [bold]{BRAND_ID}[/bold] "
                    "(dev mode: “Mint a dev token”). Press Ctrl-C to stop.",
                    soft_wrap=True,
                )
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
    except (DemoError, httpx.HTTPError) as exc:
        console.print(f"[red]demo failed:[/red] {exc or type(exc).__name__}", soft_wrap=True)
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        if data_dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":
    app()
