"""The ``discount-codes`` command line: serve, worker, migrate, token, generate."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Annotated

import typer

from discount_codes.config import Settings, SettingsError, load_settings

app = typer.Typer(
    help="discount-codes: discount codes for a brand marketplace.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _settings(dev: bool = False) -> Settings:
    """Read settings or exit with the one-line reason."""
    if dev:
        os.environ["DISCOUNT_CODES_DEV"] = "true"
    try:
        return load_settings()
    except SettingsError as exc:
        typer.secho(f"discount-codes: refusing to start: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="API processes.")] = 1,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not run the worker in-process.")
    ] = False,
    dev: Annotated[
        bool, typer.Option("--dev", help="Local signing key under the data folder; mint tokens.")
    ] = False,
) -> None:
    """Run the HTTP API (and the worker in-process unless --no-worker)."""
    import uvicorn

    from discount_codes.db import Database
    from discount_codes.migrate import schema_problem, upgrade_to_head

    if no_worker:
        os.environ["DISCOUNT_CODES_RUN_WORKER"] = "false"
    settings = _settings(dev)
    if settings.dev:
        from discount_codes.auth import ensure_dev_key

        ensure_dev_key(settings.dev_key_path)
        _print_dev_banner(settings, host, port)
    if settings.is_sqlite:
        upgrade_to_head(settings.database_url)
    else:

        async def check() -> str | None:
            db = Database(settings)
            try:
                return await schema_problem(db.engine)
            finally:
                await db.dispose()

        try:
            why = asyncio.run(check())
        except OSError as exc:
            why = f"database unreachable: {exc}"
        if why:
            typer.secho(f"discount-codes: refusing to start: {why}", err=True, fg="red")
            raise typer.Exit(2)
    from discount_codes.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir(workers)
    from discount_codes.edge.protocol import HEADER_TIMEOUT_ENV

    # Every worker process reads the header deadline from here (edge/protocol.py).
    os.environ[HEADER_TIMEOUT_ENV] = str(settings.request_body_timeout_s)
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal to the handler
    # that was there before it; make that one a clean exit so orchestrators see status 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "discount_codes.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="discount_codes.edge.protocol:GuardedHttpToolsProtocol",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=20,
        timeout_keep_alive=settings.http_keep_alive_s,
    )


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _print_dev_banner(settings: Settings, host: str, port: int) -> None:
    """Dev mode: show a newcomer how to call the service right now, with fresh tokens."""
    from rich.console import Console

    from discount_codes.auth import mint_dev_token

    brand_token = mint_dev_token(settings, "dev-brand-staff", brands=["demo-brand"], ttl=86400)
    shopper_token = mint_dev_token(
        settings, "dev-shopper", email="shopper@example.com", name="Dev Shopper", ttl=86400
    )
    base = f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else host}:{port}"  # noqa: S104
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"[bold]discount-codes[/bold] (dev mode, {settings.database_url})")
    console.print(f"API docs: {base}/docs    Brand console: {base}/console/")
    console.print("Brand staff of demo-brand, valid 24 h:")
    console.print(f"  export BRAND_TOKEN={brand_token}")
    console.print("A shopper, valid 24 h:")
    console.print(f"  export SHOPPER_TOKEN={shopper_token}")
    console.print("Try it:")
    console.print(
        f"  curl -s -X POST {base}/v1/brands/demo-brand/campaigns "
        '-H "Authorization: Bearer $BRAND_TOKEN" -H "Content-Type: application/json" '
        """-d '{"name": "Spring sale"}'"""
    )
    console.print(f'  curl -s {base}/v1/me/claims -H "Authorization: Bearer $SHOPPER_TOKEN"')
    console.print("More tokens: discount-codes token --sub ID [--brand B] [--email E]")


@app.command()
def worker() -> None:
    """Run batch generation and event delivery alone (start more to scale out)."""
    from discount_codes import telemetry
    from discount_codes.logs import configure_logging
    from discount_codes.worker import run_standalone

    settings = _settings()
    configure_logging(settings)
    import uvloop  # as uvicorn runs the API: the worker's HTTP sends are CPU-bound

    telemetry.setup()
    uvloop.run(run_standalone(settings))


@app.command()
def migrate() -> None:
    """Bring the database schema to head (idempotent)."""
    from discount_codes.migrate import head_revision, upgrade_to_head

    settings = _settings()
    upgrade_to_head(settings.direct_url)
    typer.echo(f"schema at {head_revision()}")


@app.command()
def token(
    sub: Annotated[str, typer.Option(help="User id (the token's subject).")],
    email: Annotated[str | None, typer.Option(help="Shopper's e-mail.")] = None,
    name: Annotated[str | None, typer.Option(help="Shopper's name.")] = None,
    brand: Annotated[
        list[str] | None, typer.Option(help="Brand id administered (repeatable).")
    ] = None,
    ttl: Annotated[int, typer.Option(min=1, max=30 * 86400, help="Seconds of validity.")] = 3600,
) -> None:
    """Print a dev token signed with the local dev key."""
    from discount_codes.auth import mint_dev_token

    settings = _settings(dev=True)
    typer.echo(mint_dev_token(settings, sub, email=email, name=name, brands=brand, ttl=ttl))


@app.command()
def generate(
    campaign: Annotated[str, typer.Option(help="The campaign's id.")],
    count: Annotated[int, typer.Option(min=1, max=1_000_000, help="How many codes to make.")],
    length: Annotated[int, typer.Option(min=8, max=24, help="Random symbols per code.")] = 12,
    prefix: Annotated[str, typer.Option(help="Put before every code (A-Z, 0-9, up to 12).")] = "",
) -> None:
    """Make codes for a campaign through the service layer, with a progress bar."""
    import re

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from discount_codes.codes.jobs import generate_codes
    from discount_codes.db import Database
    from discount_codes.problems import ProblemError

    if not re.fullmatch(r"[A-Z0-9]{0,12}", prefix):
        typer.secho("discount-codes: --prefix takes 0 to 12 of A-Z and 0-9", err=True, fg="red")
        raise typer.Exit(2)
    settings = _settings()

    async def run() -> None:
        db = Database(settings)
        try:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            ) as progress:
                task = progress.add_task("generating", total=count)
                batch = await generate_codes(
                    db,
                    campaign,
                    count,
                    settings=settings,
                    length=length,
                    prefix=prefix,
                    on_progress=lambda done: progress.update(task, completed=done),
                )
            typer.echo(f"batch {batch.id}: {batch.generated} codes, {batch.status}")
        finally:
            await db.dispose()

    try:
        asyncio.run(run())
    except ProblemError as exc:
        typer.secho(f"discount-codes: {exc.detail}", err=True, fg="red")
        raise typer.Exit(1) from None


def main() -> None:
    try:
        app()
    except SettingsError as exc:  # pragma: no cover - defensive, _settings catches first
        print(f"discount-codes: refusing to start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
