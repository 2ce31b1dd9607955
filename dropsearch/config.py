"""Service and runtime settings, read from the environment (prefix ``DROPSEARCH_``) or a ``.env`` file.

One :class:`Settings` object; other modules call :func:`get_settings` (cached) so tests can override it with
``get_settings.cache_clear()`` after changing the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "get_settings", "postgres_url"]


class Settings(BaseSettings):
    """Every setting of dropsearch. Each field is read from ``DROPSEARCH_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="DROPSEARCH_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path(".dropsearch"), description="Where SQLite, keys, checkpoints and Ray logs go.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<data_dir>/dropsearch.db. Postgres in production."
    )
    database_host: str | None = Field(
        None, description="Postgres host: with no database_url, the URL is built from the database_* settings."
    )
    database_port: int = Field(5432, description="Postgres port (with database_host).")
    database_name: str = Field("dropsearch", description="Postgres database (with database_host).")
    database_user: str = Field("dropsearch", description="Postgres role (with database_host).")
    database_password: str | None = Field(None, description="Postgres password (any characters; URL-encoded).")
    database_password_file: Path | None = Field(
        None, description="File holding the Postgres password (e.g. a mounted secret); used when no password is set."
    )
    admin_key_file: Path | None = Field(
        None,
        description="File holding the admin API key, chosen by the operator (e.g. a mounted Kubernetes Secret): "
        "serve stores it hashed and prints nothing; a changed file revokes the previous one. Default: serve makes "
        "a key on first start and keeps it in <data_dir>/admin.key.",
    )
    host: str = Field("127.0.0.1", description="API bind address.")
    port: int = Field(8000, description="API port.")
    ray_address: str | None = Field(None, description="Ray cluster to join (e.g. 'auto', 'ray://head:10001').")
    ray_dashboard_url: str = Field("http://127.0.0.1:8265", description="Ray dashboard URL shown to users.")
    ray_num_cpus: int | None = Field(None, description="CPUs for an embedded local Ray (default: all).")
    max_concurrent_searches: int = Field(1, ge=1, description="Searches one runner runs at once.")
    max_trials: int = Field(1000, ge=1, description="Cap on budget.trials of one search.")
    max_epochs_per_trial: int = Field(200, ge=1, description="Cap on budget.epochs_per_trial.")
    max_request_bytes: int = Field(1_000_000, ge=1024, description="Largest accepted request body.")
    dataset_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="Directories that dataset paths (image-folder, cifar10, text) may name."
    )
    heartbeat_s: float = Field(5.0, gt=0, description="Runner lease heartbeat interval.")
    lease_timeout_s: float = Field(30.0, gt=0, description="A lease not renewed for this long is stale.")
    log_level: str = Field("INFO", description="Python logging level.")
    migrate_on_start: bool = Field(True, description="Run database migrations when the API starts.")
    tune_loggers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Ray Tune logger callbacks of every search: tensorboard, csv, json, mlflow (comma separated); "
        "their files go to <data_dir>/tune/<search id>/ (mlflow: a local file store in <data_dir>/tune/mlruns).",
    )

    @field_validator("tune_loggers", mode="before")
    @classmethod
    def _split_loggers(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        allowed = ("tensorboard", "csv", "json", "mlflow")
        for name in value if isinstance(value, list) else []:
            if name not in allowed:
                raise ValueError(f"tune_loggers: {name!r} is not one of {', '.join(allowed)}")
        return value

    @property
    def tune_storage(self) -> Path:
        """Where Ray Tune keeps each search's experiment directory (and its logger files)."""
        return self.data_dir / "tune"

    @field_validator("dataset_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part for part in text.replace(",", ":").split(":") if part]
        return value

    def _database_password(self) -> str | None:
        if self.database_password is not None:
            return self.database_password
        if self.database_password_file is not None:
            return self.database_password_file.read_text(encoding="utf-8").rstrip("\r\n")
        return None

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        if self.database_host:
            return postgres_url(
                host=self.database_host,
                port=self.database_port,
                database=self.database_name,
                user=self.database_user,
                password=self._database_password(),
            )
        return f"sqlite:///{(self.data_dir / 'dropsearch.db').resolve()}"


def postgres_url(*, host: str, port: int, database: str, user: str, password: str | None) -> str:
    """A ``postgresql+psycopg://`` URL whose user, password and database are percent-encoded (``@ / : %`` kept)."""
    from urllib.parse import quote

    auth = quote(user, safe="") + ("" if password is None else ":" + quote(password, safe=""))
    return f"postgresql+psycopg://{auth}@{host}:{port}/{quote(database, safe='')}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` to re-read the environment)."""
    return Settings()
