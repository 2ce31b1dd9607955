"""Schema migrations from code: ``upgrade(url)`` brings a database to the newest Alembic revision.

Used by ``dropsearch db upgrade`` and at service start. The Alembic files ship inside the package
(``store/alembic.ini``, ``store/alembic/``), so this works from an installed wheel without a checkout.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from dropsearch.config import get_settings
from dropsearch.store.db import make_engine

__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade"]

_HERE = Path(__file__).resolve().parent


def alembic_config(url: str | None = None) -> Config:
    """The Alembic config of the store, pointed at ``url`` (default: the settings' database URL)."""
    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE / "alembic"))
    # Passed as an attribute, not an ini option, so that '%' in passwords needs no escaping.
    config.attributes["url"] = url if url is not None else get_settings().resolved_database_url
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Migrate the database at ``url`` (default: from settings) up to ``revision``. Safe to run repeatedly.

    Args:
        url: SQLAlchemy database URL. Default: ``get_settings().resolved_database_url``
        revision: target revision. Default: ``"head"``
    """
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The newest revision shipped with this version of dropsearch."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError("no Alembic revisions found")
    return head


def current_revision(url: str | None = None) -> str | None:
    """The revision the database at ``url`` is at, or ``None`` if it was never migrated."""
    engine = make_engine(url if url is not None else get_settings().resolved_database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
