"""No Docker engine runs here, so the deployment files are checked by reading them: every
command they run exists in the CLI and every setting they pass exists in Settings."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url
from typer.main import get_command

from discount_codes.cli import app as cli_app
from discount_codes.config import Settings

from ..conftest import REQUIRE_SERVICES, ROOT

COMMANDS = set(get_command(cli_app).commands)  # type: ignore[attr-defined]
SETTINGS = {f"DISCOUNT_CODES_{name.upper()}" for name in Settings.model_fields}


def test_compose_services_commands_and_settings_exist() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"monitor", "node1", "node2", "rabbitmq", "migrate", "api", "worker"} <= set(services)
    assert {"dev-tokens", "dev-migrate", "dev-api", "dev-worker"} <= set(services)
    for name in ("monitor", "node1", "node2", "rabbitmq", "api", "dev-api"):
        assert services[name].get("healthcheck"), f"{name} has no healthcheck"
    for name in ("migrate", "api", "worker", "dev-tokens", "dev-migrate", "dev-api", "dev-worker"):
        service = services[name]
        assert service["build"] == "."
        command = service["command"] if "entrypoint" not in service else _cli_commands(service)
        assert command[0] in COMMANDS, command
        for key in service["environment"]:
            assert key in SETTINGS, f"{name}: {key} is not a setting"
        assert service["environment"]["DISCOUNT_CODES_DATABASE_URL"].startswith(
            "postgresql+asyncpg://"
        )
    for prefix in ("", "dev-"):
        api_args = services[f"{prefix}api"]["command"]
        assert "--no-worker" in api_args  # workers are scaled separately
        depends = services[f"{prefix}api"]["depends_on"]
        assert depends[f"{prefix}migrate"]["condition"] == "service_completed_successfully"
        serve = get_command(cli_app).commands["serve"]  # type: ignore[attr-defined]
        options = {opt for p in serve.params for opt in p.opts}
        assert {a for a in api_args[1:] if a.startswith("--")} <= options


def _cli_commands(service: dict[str, Any]) -> list[str]:
    """``sh -c "discount-codes token ... && discount-codes token ..."``: each command run."""
    assert service["entrypoint"] == ["sh", "-c"]
    script = " ".join(service["command"])
    parts = [p.split() for p in script.split("&&")]
    assert all(p[0] == "discount-codes" for p in parts), script
    return [p[1] for p in parts]


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
    """Each node's PgBouncer lives in the node's network namespace (it goes down with it);
    the service lists both PgBouncers, and both nodes for LISTEN and migrations, and takes
    the one that accepts writes."""
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for node in ("node1", "node2"):
        bouncer = services[f"pgbouncer{node[-1]}"]
        assert bouncer.get("healthcheck"), f"pgbouncer of {node} has no healthcheck"
        assert bouncer["network_mode"] == f"service:{node}"
        assert bouncer["environment"]["PGBOUNCER_POOL_MODE"] == "transaction"
        assert bouncer["environment"]["POSTGRESQL_HOST"] == node
        assert bouncer["depends_on"][node]["condition"] == "service_healthy"
    for name in ("api", "worker", "dev-api", "dev-worker"):
        env = services[name]["environment"]
        assert env["DISCOUNT_CODES_DATABASE_POOLER"] == "pgbouncer"
        pooled = make_url(env["DISCOUNT_CODES_DATABASE_URL"])
        direct = make_url(env["DISCOUNT_CODES_DATABASE_DIRECT_URL"])
        assert pooled.query["host"] == ("node1:6432", "node2:6432")
        assert direct.query["host"] == ("node1:5432", "node2:5432")
        for url in (pooled, direct):
            assert url.query["target_session_attrs"] == "read-write"
            assert url.database == "discount_codes"
        for dependency in ("pgbouncer1", "pgbouncer2", "node1", "node2"):
            assert services[name]["depends_on"][dependency]["condition"] == "service_healthy"
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


def test_pg_auto_failover_runs_a_synchronous_pair_for_the_services_database() -> None:
    """Our settings for the failover manager (its behaviour is its own): one monitor, two
    nodes of one formation, each a synchronous standby candidate of equal priority, made
    for the database and user the service's URLs name."""
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert services["monitor"]["command"][:3] == ["pg_autoctl", "create", "monitor"]
    monitor_uri = "postgresql://autoctl_node@monitor/pg_auto_failover?sslmode=require"
    for node in ("node1", "node2"):
        service = services[node]
        command = service["command"]
        assert command[:3] == ["pg_autoctl", "create", "postgres"]
        options = dict(zip(command[3::2], command[4::2], strict=False))
        assert options["--name"] == options["--hostname"] == service["hostname"] == node
        assert options["--dbname"] == "discount_codes"
        assert options["--username"] == "discount_codes"
        assert options["--replication-quorum"] == "true"
        assert options["--candidate-priority"] == "50"
        assert command[-1] == "--run"
        assert service["environment"]["PG_AUTOCTL_MONITOR"] == monitor_uri
        assert service["build"] == "./deploy/pg_auto_failover"
    image = (ROOT / "deploy" / "pg_auto_failover" / "Dockerfile").read_text()
    assert "FROM postgres:15" in image
    assert "postgresql-15-auto-failover" in image


@pytest.mark.parametrize("profile", ["dev", "production"])
def test_docker_compose_accepts_each_form(profile: str) -> None:
    """Debian's docker-compose (1.29) validates the file without an engine. The dev form is
    what ``docker-compose up --build`` starts (``.env``); the production form needs the
    identity service's key, nothing else placed by hand."""
    if shutil.which("docker-compose") is None:
        message = "Debian's docker-compose is not installed (.ci/run installs it)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "COMPOSE_PROFILES": profile}
    done = subprocess.run(
        ["docker-compose", "config"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    services = yaml.safe_load(done.stdout)["services"]
    enabled = {n for n, s in services.items() if profile in s.get("profiles", [profile])}
    shared = {"monitor", "node1", "node2", "pgbouncer1", "pgbouncer2", "rabbitmq"}
    if profile == "dev":
        assert enabled == shared | {"dev-tokens", "dev-migrate", "dev-api", "dev-worker"}
        for name in enabled - shared:
            assert "secrets" not in services[name], name  # nothing placed by hand
            assert services[name]["environment"]["DISCOUNT_CODES_DEV"] == "true"
        assert "--brand" in services["dev-tokens"]["command"][0]
        # The dev key lives in a volume at DATA_DIR, which the image's user owns.
        assert services["dev-tokens"]["volumes"][0].startswith("dev-keys:/app/var")
        assert "chown app /app/var" in (ROOT / "Dockerfile").read_text()
    else:
        assert enabled == shared | {"migrate", "api", "worker"}
        for name in enabled - shared:
            assert "DISCOUNT_CODES_DEV" not in services[name]["environment"], name
            assert services[name]["secrets"][0]["source"] == "auth_public_key.pem"
    dotenv = (ROOT / ".env").read_text()
    assert "COMPOSE_PROFILES=dev" in dotenv.splitlines()


def test_ci_installs_pgbouncer_and_docker_compose_from_debian() -> None:
    text = (ROOT / ".ci" / "run").read_text()
    assert "apt-get install -y -qq pgbouncer" in text
    assert "apt-get install -y -qq docker-compose" in text
