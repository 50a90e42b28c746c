"""Settings, read from ``SIYU_*`` environment variables (and a ``.env`` file if present).

=========================  ============================================  =========================
variable                   meaning                                       default
=========================  ============================================  =========================
``SIYU_DATA_DIR``          where the embedded database and secrets live  ``./siyu-data``
``SIYU_DATABASE_URL``      SQLAlchemy URL; ``postgresql+psycopg://…`` in SQLite file in the data
                           production                                    directory
``SIYU_SECRET_KEY``        instance secret (sessions, derived keys)      generated once, kept in
                                                                         ``DATA_DIR/secret_key``
``SIYU_HOST``              address ``siyu serve`` binds                  ``127.0.0.1``
``SIYU_PORT``              port ``siyu serve`` binds                     ``8000``
``SIYU_MAX_BODY_BYTES``    largest request body accepted (413 beyond)    10 MiB
``SIYU_MAX_UPLOAD_BYTES``  largest file upload (``/api/v1/imports/…``),  1 GiB
                           streamed to a temporary file, not buffered
``SIYU_WORKER_EMBEDDED``   run the outbox worker inside ``siyu serve``   ``true``
                           (``false`` when ``siyu worker`` runs apart)
``SIYU_WORKER_POLL``       seconds an idle worker waits between looks    ``0.5``
``SIYU_WORKER_BATCH``      items a worker claims at once                 ``50``
``SIYU_OUTBOX_MAX_ATTEMPTS``  attempts before an item is dead            ``10``
``SIYU_OUTBOX_LEASE``      seconds a claimed item stays with its worker  ``120``
``SIYU_ANALYTICS_DIR``     root of the columnar (Parquet) mirror that    ``DATA_DIR/analytics``
                           the analytics queries read
``SIYU_ANALYTICS_SYNC_INTERVAL``  seconds between mirror syncs inside    ``5``
                           ``siyu serve`` (``0``: no sync loop)
=========================  ============================================  =========================

Bad configuration raises :class:`ConfigError` with one line that names the variable; the CLI
prints that line and exits, never a traceback.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

SUPPORTED_DRIVERS = ("sqlite", "postgresql+psycopg")


class ConfigError(Exception):
    """Configuration that Siyu cannot start with; ``str()`` is one line for a human."""


class Settings(BaseSettings):
    """Every knob of a Siyu instance."""

    model_config = SettingsConfigDict(env_prefix="SIYU_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("siyu-data"), description="directory for the embedded database")
    database_url: str | None = Field(default=None, description="SQLAlchemy database URL")
    secret_key: str | None = Field(default=None, min_length=32, description="instance secret")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    bootstrap_password: str | None = Field(default=None, min_length=8)
    bootstrap_api_key: str | None = Field(default=None, min_length=24)
    console: bool = True
    worker_embedded: bool = True
    upkeep: bool = Field(
        default=True,
        description="run the background jobs (expiry, campaigns, journeys, statistics) inside siyu serve",
    )
    worker_poll: float = Field(default=0.5, gt=0, le=60)
    worker_batch: int = Field(default=50, ge=1, le=1000)
    outbox_max_attempts: int = Field(default=10, ge=1, le=100)
    outbox_lease: float = Field(default=120.0, ge=1, le=86_400)
    analytics_dir: Path | None = Field(default=None, description="root of the Parquet mirror")
    analytics_sync_interval: float = Field(default=5.0, ge=0, le=86_400)

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(f"not a database URL: {value!r}") from None
        if url.drivername not in SUPPORTED_DRIVERS:
            raise ValueError(
                f"unsupported driver {url.drivername!r}; use sqlite:///path or postgresql+psycopg://…"
            )
        return value

    @cached_property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``DATA_DIR/siyu.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'siyu.db').resolve()}"

    @property
    def resolved_analytics_dir(self) -> Path:
        """The mirror's root, defaulting to ``DATA_DIR/analytics``."""
        return self.analytics_dir if self.analytics_dir is not None else self.data_dir / "analytics"

    def ensure_data_dir(self) -> Path:
        """Create the data directory if needed; say clearly when that is impossible."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"SIYU_DATA_DIR: cannot create {self.data_dir}: {exc.strerror}") from None
        if not os.access(self.data_dir, os.W_OK):
            raise ConfigError(f"SIYU_DATA_DIR: {self.data_dir} is not writable")
        return self.data_dir

    def resolved_secret_key(self) -> str:
        """The instance secret: from the environment, or generated once into the data directory."""
        if self.secret_key:
            return self.secret_key
        path = self.ensure_data_dir() / "secret_key"
        if path.exists():
            value = path.read_text().strip()
            if len(value) < 32:
                raise ConfigError(f"{path}: secret key shorter than 32 characters; delete it to regenerate")
            return value
        value = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        return value


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning validation errors into one :class:`ConfigError` line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            problems.append(f"SIYU_{field.upper()}: {error['msg']}")
        raise ConfigError("bad configuration: " + "; ".join(problems)) from None
