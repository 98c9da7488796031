"""One Settings object, read once from the environment (prefix ``DISCOUNT_CODES_``).

It refuses unsafe or contradictory combinations at start-up, with one clear line,
rather than letting the service run half-configured.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Depends, Request
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from discount_codes.kit.dialect import Dialect

DEV_ISSUER = "urn:discount-codes:dev"
DEFAULT_AUDIENCE = "discount-codes"
ALLOWED_ALGORITHMS = frozenset({"RS256", "ES256", "EdDSA"})


class SettingsError(ValueError):
    """A setting is unsafe or contradictory; the message is one line for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISCOUNT_CODES_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str = ""
    #: ``pgbouncer``: ``database_url`` points at PgBouncer in transaction pooling mode.
    database_pooler: Literal["pgbouncer"] | None = None
    #: A direct PostgreSQL connection for LISTEN and migrations (behind a pooler; optional).
    database_direct_url: str | None = None
    broker_url: str | None = None

    dev: bool = False
    auth_public_key_file: Path | None = None
    auth_jwks_url: str | None = None
    auth_issuer: str | None = None
    auth_audience: str = DEFAULT_AUDIENCE
    auth_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["RS256", "ES256", "EdDSA"]
    )

    inline_batch_limit: int = Field(default=10_000, ge=0, le=1_000_000)
    max_batch_count: int = Field(default=1_000_000, ge=1, le=1_000_000)
    webhook_allow_private_urls: bool = False
    #: Receivers on this machine (http too), private and metadata addresses still refused;
    #: unset, it follows ``dev`` so ``make run`` can call a local test receiver.
    webhook_allow_loopback_urls: bool | None = None
    #: Deliveries one worker sends to one endpoint at once (order best effort); an endpoint
    #: registered with ``"ordering": "strict"`` gets one at a time.
    webhook_max_in_flight: int = Field(default=16, ge=1, le=256)
    #: How long a worker's lease on a webhook delivery lasts without renewal (renewed three
    #: or more times per lease); a crashed worker's deliveries are sent again once it lapses.
    webhook_lease_seconds: float = Field(default=15.0, ge=1, le=3600)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: Unset: ``console`` when stderr is a terminal (a person runs it), else ``json``.
    log_format: Literal["json", "console"] | None = None

    run_worker: bool = True
    #: Requests handled at once by one API process; beyond it a request is answered
    #: ``503 service-unavailable`` with ``Retry-After`` at once instead of queueing, so the
    #: ones accepted keep a bounded latency when the offer exceeds capacity. 0: no limit.
    #: Seconds uvicorn keeps an idle connection open. Longer than any client's or proxy's
    #: reuse window (httpx 5 s, nginx upstream and common load balancers 60 s), so the
    #: client closes an idle connection first: when the server closed it just as a client
    #: reused it, that request was reset with nothing logged.
    http_keep_alive_s: int = Field(default=75, ge=1, le=3600)
    max_requests_in_flight: int = Field(default=128, ge=0, le=100_000)
    #: Verified tokens remembered (by their SHA-256) until their ``exp``, at most
    #: ``token_cache_ttl_s``: a repeat call skips the signature check. 0 turns it off.
    token_cache_size: int = Field(default=10_000, ge=0, le=1_000_000)
    token_cache_ttl_s: float = Field(default=300.0, ge=0, le=3600)
    db_pool_size: int = Field(default=10, ge=1, le=500)
    #: Seconds a request waits for a database connection turn; past it the request is
    #: answered ``503 service-unavailable`` with ``Retry-After`` instead of hanging.
    database_pool_timeout_s: float = Field(default=5.0, gt=0, le=300)
    #: An optional read replica for heavy reads (exports, activity, console lists); never
    #: used by claims, redemptions or the feed.
    database_read_url: str | None = None
    #: Seconds a request's body may take to arrive in full; past it the request is
    #: answered ``408 request-timeout``, the connection closed, and it holds no admission
    #: slot while it waits.
    request_body_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    #: The most of ``max_requests_in_flight`` that one brand's requests may hold while
    #: another brand's requests wait (fair admission between brands).
    tenant_in_flight_share: float = Field(default=0.5, gt=0, le=1.0)
    #: PostgreSQL: a statement that runs longer fails (the request answers 503), so a
    #: database that stops answering cannot hold requests for ever.
    db_statement_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    #: Codes made and committed per transaction by batch generation.
    batch_chunk_size: int = Field(default=50_000, ge=1, le=1_000_000)
    #: How long a worker's claim on a batch lasts without renewal (renewed every chunk);
    #: a crashed worker's batch is taken over once it lapses.
    batch_lease_seconds: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "database_pooler", "database_direct_url", "database_read_url", "log_format", mode="before"
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("auth_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{(self.data_dir / 'discount-codes.db')}"
        scheme = self.database_url.split("://", 1)[0]
        if scheme not in {"sqlite+aiosqlite", "postgresql+asyncpg"}:
            raise SettingsError(
                "DISCOUNT_CODES_DATABASE_URL must start with sqlite+aiosqlite:// or "
                f"postgresql+asyncpg:// (got {scheme!r})"
            )
        self._check_pooler()
        bad = [a for a in self.auth_algorithms if a not in ALLOWED_ALGORITHMS]
        if bad or not self.auth_algorithms:
            raise SettingsError(
                "DISCOUNT_CODES_AUTH_ALGORITHMS may list only RS256, ES256, EdDSA "
                f"(got {','.join(self.auth_algorithms) or 'nothing'})"
            )
        if self.auth_public_key_file and self.auth_jwks_url:
            raise SettingsError(
                "set DISCOUNT_CODES_AUTH_PUBLIC_KEY_FILE or DISCOUNT_CODES_AUTH_JWKS_URL, not both"
            )
        if self.auth_jwks_url:
            parts = urlsplit(self.auth_jwks_url)
            if parts.scheme not in {"https", "http"} or not parts.hostname:
                raise SettingsError("DISCOUNT_CODES_AUTH_JWKS_URL must be an http(s) URL")
        if self.broker_url:
            parts = urlsplit(self.broker_url)
            if parts.scheme not in {"amqp", "amqps"} or not parts.hostname:
                raise SettingsError("DISCOUNT_CODES_BROKER_URL must be an amqp:// or amqps:// URL")
        if self.dev and (self.auth_public_key_file or self.auth_jwks_url):
            raise SettingsError(
                "dev mode trusts only its own local key: unset the AUTH_PUBLIC_KEY_FILE / "
                "AUTH_JWKS_URL settings or drop --dev"
            )
        if not self.dev and not (self.auth_public_key_file or self.auth_jwks_url):
            raise SettingsError(
                "no token verification key: set DISCOUNT_CODES_AUTH_PUBLIC_KEY_FILE or "
                "DISCOUNT_CODES_AUTH_JWKS_URL, or run with --dev for local development"
            )
        if self.auth_public_key_file and not self.auth_public_key_file.is_file():
            raise SettingsError(
                f"DISCOUNT_CODES_AUTH_PUBLIC_KEY_FILE {self.auth_public_key_file} is not a file"
            )
        if not self.dev and self.auth_issuer is None:
            raise SettingsError("DISCOUNT_CODES_AUTH_ISSUER is required outside dev mode")
        if self.dev and self.auth_issuer is None:
            self.auth_issuer = DEV_ISSUER
        return self

    def _check_pooler(self) -> None:
        if self.database_pooler and Dialect.from_url(self.database_url) is not Dialect.POSTGRESQL:
            raise SettingsError("DISCOUNT_CODES_DATABASE_POOLER needs a PostgreSQL DATABASE_URL")
        if self.database_direct_url and not self.database_direct_url.startswith(
            "postgresql+asyncpg://"
        ):
            raise SettingsError(
                "DISCOUNT_CODES_DATABASE_DIRECT_URL must start with postgresql+asyncpg://"
            )
        if self.database_read_url and not self.database_read_url.startswith(
            "postgresql+asyncpg://"
        ):
            raise SettingsError(
                "DISCOUNT_CODES_DATABASE_READ_URL must start with postgresql+asyncpg://"
            )
        if self.database_read_url and self.is_sqlite:
            raise SettingsError(
                "DISCOUNT_CODES_DATABASE_READ_URL (a PostgreSQL replica) needs a PostgreSQL "
                "DATABASE_URL"
            )

    @property
    def direct_url(self) -> str:
        """Where migrations run: the direct connection when one is given."""
        return self.database_direct_url or self.database_url

    @property
    def listen_url(self) -> str | None:
        """Where the worker LISTENs for new events; None: poll only (SQLite, or a
        transaction pooler without a direct connection: LISTEN needs a session)."""
        if self.is_sqlite:
            return None
        if self.database_pooler and not self.database_direct_url:
            return None
        return self.direct_url

    @property
    def is_sqlite(self) -> bool:
        return Dialect.from_url(self.database_url) is Dialect.SQLITE

    @property
    def webhook_loopback_allowed(self) -> bool:
        if self.webhook_allow_loopback_urls is None:
            return self.dev
        return self.webhook_allow_loopback_urls

    @property
    def dev_key_path(self) -> Path:
        return self.data_dir / "dev-signing-key.pem"


def load_settings() -> Settings:
    """Read the environment; turn pydantic's report into one line per problem."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = str(err.get("ctx", {}).get("error", err["msg"]))
            lines.append(f"DISCOUNT_CODES_{loc.upper()}: {msg}" if loc else msg)
        raise SettingsError("; ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


async def settings_of(request: Request) -> Settings:
    """The app's one Settings (read at start-up by ``create_app``), for an endpoint that
    needs a setting; a coroutine, so FastAPI does not run it in a thread."""
    settings: Settings = request.app.state.settings
    return settings


#: The settings dependency: every endpoint that needs a setting asks for this.
SettingsDep = Annotated[Settings, Depends(settings_of)]
