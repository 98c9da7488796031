"""No Docker engine runs here, so the deployment files are checked by reading them: every
command they run exists in the CLI and every setting they pass exists in Settings."""

from __future__ import annotations

import yaml
from typer.main import get_command

from discount_codes.cli import app as cli_app
from discount_codes.config import Settings

from ..conftest import ROOT

COMMANDS = set(get_command(cli_app).commands)  # type: ignore[attr-defined]
SETTINGS = {f"DISCOUNT_CODES_{name.upper()}" for name in Settings.model_fields}


def test_compose_services_commands_and_settings_exist() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "rabbitmq", "migrate", "api", "worker"} <= set(services)
    for name in ("postgres", "rabbitmq", "api"):
        assert services[name].get("healthcheck"), f"{name} has no healthcheck"
    for name in ("migrate", "api", "worker"):
        service = services[name]
        assert service["build"] == "."
        assert service["command"][0] in COMMANDS, service["command"]
        for key in service["environment"]:
            assert key in SETTINGS, f"{name}: {key} is not a setting"
        assert service["environment"]["DISCOUNT_CODES_DATABASE_URL"].startswith(
            "postgresql+asyncpg://"
        )
    api_args = services["api"]["command"]
    assert "--no-worker" in api_args  # workers are scaled separately
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    serve = get_command(cli_app).commands["serve"]  # type: ignore[attr-defined]
    options = {opt for p in serve.params for opt in p.opts}
    assert {a for a in api_args[1:] if a.startswith("--")} <= options


def test_dockerfile_is_slim_non_root_and_locked() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "pip install -r requirements.lock" in text
    user_lines = [ln for ln in text.splitlines() if ln.startswith("USER ")]
    assert user_lines and user_lines[-1].split()[1] not in {"root", "0"}
    assert 'ENTRYPOINT ["discount-codes"]' in text
    cmd = next(ln for ln in text.splitlines() if ln.startswith("CMD "))
    assert yaml.safe_load(cmd[4:])[0] in COMMANDS


def test_lock_file_pins_every_dependency_exactly() -> None:
    lines = [
        ln.strip()
        for ln in (ROOT / "requirements.lock").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines and all("==" in ln for ln in lines), [ln for ln in lines if "==" not in ln]
    pinned = {ln.split("==")[0].lower().replace("_", "-") for ln in lines}
    for needed in ("fastapi", "sqlalchemy", "asyncpg", "aiosqlite", "alembic", "pyjwt", "uvicorn"):
        assert needed in pinned


def test_compose_runs_api_and_worker_behind_pgbouncer_with_a_direct_url() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    bouncer = services["pgbouncer"]
    assert bouncer.get("healthcheck"), "pgbouncer has no healthcheck"
    assert "transaction" in bouncer["environment"].values()
    assert bouncer["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["DISCOUNT_CODES_DATABASE_POOLER"] == "pgbouncer"
        assert "@pgbouncer:" in env["DISCOUNT_CODES_DATABASE_URL"]
        assert "@postgres:" in env["DISCOUNT_CODES_DATABASE_DIRECT_URL"]
        assert services[name]["depends_on"]["pgbouncer"]["condition"] == "service_healthy"
        settings = Settings(
            database_url=env["DISCOUNT_CODES_DATABASE_URL"],
            database_pooler=env["DISCOUNT_CODES_DATABASE_POOLER"],
            database_direct_url=env["DISCOUNT_CODES_DATABASE_DIRECT_URL"],
            dev=True,
        )
        # LISTEN and migrations go around the pooler.
        assert (
            settings.listen_url == settings.direct_url == env["DISCOUNT_CODES_DATABASE_DIRECT_URL"]
        )


def test_ci_installs_pgbouncer_from_debian() -> None:
    text = (ROOT / ".ci" / "run").read_text()
    assert "apt-get install -y -qq pgbouncer" in text
