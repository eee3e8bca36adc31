"""The queue's database schema, versioned with Alembic (`migrations/`).

Every table of the queue has the `rubiks_queue_` prefix and Alembic keeps the queue's revision
in `rubiks_queue_alembic_version`, so the queue shares a database with MLflow (or anything else)
without touching it. `upgrade(engine)` runs on every JobStore start and by `rubiks jobs migrate`;
concurrent starts are serialised (a PostgreSQL advisory lock, or a lock file beside an SQLite
database), so eight `rubiks submit` at once migrate once. A database written by a newer release
is refused, never modified.
"""
from __future__ import annotations

import contextlib
import fcntl
import os

from sqlalchemy import Engine, inspect, text

VERSION_TABLE = "rubiks_queue_alembic_version"
JOBS_TABLE = "rubiks_queue_jobs"
_LOCK_KEY = 0x7275626B  # "rubk": the queue's PostgreSQL advisory-lock key
_MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this release."""


def _alembic_config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", _MIGRATIONS)
    return cfg


def _scripts():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


def head_revision() -> str:
    return _scripts().get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if VERSION_TABLE not in inspect(conn).get_table_names():
            return None
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


@contextlib.contextmanager
def _migration_lock(engine: Engine):
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                conn.commit()
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        with open(os.path.abspath(engine.url.database) + ".migrate.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
    else:
        yield


def _check_known(scripts, revision: str | None) -> None:
    if revision is None:
        return
    try:
        scripts.get_revision(revision)
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown revision
        raise SchemaError(f"the queue database is at schema revision {revision!r}, which this release does not "
                          f"know (newest here: {scripts.get_current_head()!r}); upgrade rubiks-service") from None


def upgrade(engine: Engine) -> str:
    """Bring the queue's tables to the newest revision; returns it. Cheap when already there."""
    scripts = _scripts()  # read the migration files once per start
    head = scripts.get_current_head()
    current = current_revision(engine)
    _check_known(scripts, current)
    if current == head:
        return head
    from alembic import command

    with _migration_lock(engine):
        current = current_revision(engine)  # another process may have migrated while we waited
        _check_known(scripts, current)
        if current != head:
            cfg = _alembic_config()
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
    return head
