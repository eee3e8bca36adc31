"""The job table, through SQLAlchemy: an SQLite file by default, PostgreSQL in the deployment.
Its schema belongs to `schema.py` (Alembic migrations, the `rubiks_queue_` table prefix).

States: queued -> submitted -> running -> succeeded | failed | cancelled
(and back to queued when an infrastructure failure is retried). Every state
change is a conditional UPDATE (`WHERE state IN ...`), so two dispatchers, or
a dispatcher and a `cancel`, never both win the same transition.
"""
from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterable

from sqlalchemy import DateTime, Float, Integer, String, Text, create_engine, func, select, update
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from rubiks_service.redact import UserError, redact_url

from .schema import JOBS_TABLE, SchemaError, upgrade
from .spec import JobSpec

QUEUED, SUBMITTED, RUNNING = "queued", "submitted", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
ACTIVE = (SUBMITTED, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)


def default_queue_url(storage_path: str = "runs") -> str:
    return os.environ.get("RUBIKS_QUEUE_URL") or "sqlite:///" + os.path.join(os.path.abspath(storage_path), "queue.db")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class _Base(DeclarativeBase):
    pass


class Job(_Base):
    __tablename__ = JOBS_TABLE  # the columns' history is in migrations/versions

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    spec: Mapped[str] = mapped_column(Text)  # the JobSpec as JSON
    bundle: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {file name: text} the job runs
    priority: Mapped[int] = mapped_column(Integer, index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    submission_id: Mapped[str | None] = mapped_column(String(80), nullable=True)  # Ray's; = id on attempt 1
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_uri: Mapped[str | None] = mapped_column(String(500), nullable=True)  # the finished job's MLflow model
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cpus: Mapped[float] = mapped_column(Float, default=0.0)
    gpus: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    @property
    def job_spec(self) -> JobSpec:
        return JobSpec.model_validate_json(self.spec)

    @property
    def job_bundle(self) -> dict[str, str] | None:
        """The files the job runs, stored at submit (None for jobs queued before bundles existed)."""
        import json

        return json.loads(self.bundle) if self.bundle else None

    def as_dict(self) -> dict:
        out = {c.name: getattr(self, c.name) for c in self.__table__.columns if c.name not in ("spec", "bundle")}
        return {k: v.isoformat() + "Z" if isinstance(v, dt.datetime) else v for k, v in out.items()}


class UnknownJob(UserError, KeyError):
    """No job with that id in the queue."""

    def __str__(self) -> str:  # KeyError would quote its message
        return str(self.args[0]) if self.args else "unknown job"


class QueueUnavailable(UserError, RuntimeError):
    """The queue database cannot be reached or used; the message is one line for the user."""


CONNECT_TIMEOUT_S = 10  # a database server that does not answer: one line after this long


def _checked_url(url: str):
    """The queue URL parsed, or `QueueUnavailable` naming what is wrong with it (its password masked).
    An in-memory SQLite database is refused: it would accept a job and lose it when the command exits."""
    from sqlalchemy.engine import make_url

    shown = redact_url(url)
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a port that is not a number fails here, not at the first query
    except (ArgumentError, ValueError) as exc:
        raise QueueUnavailable(f"queue URL {shown!r} is not usable: {redact_url(str(exc))} (expected e.g. "
                               "sqlite:////path/queue.db or postgresql+psycopg://user:***@host:5432/db)") from None
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise QueueUnavailable(f"queue URL {shown!r}: port {parsed.port} is out of range (1..65535)")
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise QueueUnavailable(f"queue URL {shown!r} is an in-memory SQLite database, which loses every job when "
                               "the command exits: give a file, e.g. sqlite:////path/queue.db")
    return parsed


def _private_sqlite_file(path: str) -> None:
    """Create the SQLite file readable by its owner only (0600): it holds every job's configs."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


class JobStore:
    def __init__(self, url: str) -> None:
        parsed = _checked_url(url)
        self.url = redact_url(parsed.render_as_string(hide_password=False))
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            _private_sqlite_file(parsed.database)
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if backend == "postgresql" else {}
        try:
            self.engine = create_engine(parsed, future=True, pool_pre_ping=True, connect_args=connect_args)
            upgrade(self.engine)  # the schema is migrated on every start (cheap when current)
        except SchemaError as exc:
            raise QueueUnavailable(f"{self.url}: {exc}") from None
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise QueueUnavailable(f"queue URL {self.url!r} is not usable: {redact_url(str(exc))}") from None
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise QueueUnavailable(f"cannot reach the queue database {self.url}: {redact_url(reason)}") from None
        self._session = sessionmaker(self.engine, expire_on_commit=False, future=True)

    def session(self) -> Session:
        return self._session()

    def add(self, spec: JobSpec, bundle: dict[str, str] | None = None) -> Job:
        """Queue a job with the files it runs (`bundle`, from `spec.bundle_job`)."""
        import json

        job_id = f"rubiks-{spec.kind}-{uuid.uuid4().hex[:12]}"
        job = Job(id=job_id, name=spec.name, kind=spec.kind, spec=spec.model_dump_json(), priority=spec.priority,
                  bundle=json.dumps(bundle) if bundle is not None else None,
                  state=QUEUED, cpus=spec.resources.cpus, gpus=spec.resources.gpus, created_at=_now())
        with self.session() as s, s.begin():
            s.add(job)
        return job

    def get(self, job_id: str) -> Job:
        with self.session() as s:
            job = s.get(Job, job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id!r} in {self.url}")
        return job

    def list(self, states: Iterable[str] | None = None) -> list[Job]:
        query = select(Job).order_by(Job.created_at)
        if states:
            query = query.where(Job.state.in_(list(states)))
        with self.session() as s:
            return list(s.scalars(query))

    def next_queued(self, limit: int) -> list[Job]:
        """Queued jobs in dispatch order: priority (high first), then FIFO."""
        query = select(Job).where(Job.state == QUEUED).order_by(Job.priority.desc(), Job.created_at).limit(limit)
        with self.session() as s:
            return list(s.scalars(query))

    def count(self, states: Iterable[str]) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(Job).where(Job.state.in_(list(states))))

    def transition(self, job_id: str, from_states: Iterable[str], to_state: str, **fields) -> bool:
        """Move a job to `to_state` only if it is in one of `from_states`; True if this call did it."""
        stamp = {SUBMITTED: "submitted_at", RUNNING: "started_at"}.get(to_state)
        if stamp:
            fields.setdefault(stamp, _now())
        if to_state in TERMINAL:
            fields.setdefault("finished_at", _now())
        with self.session() as s, s.begin():
            result = s.execute(update(Job).where(Job.id == job_id, Job.state.in_(list(from_states)))
                               .values(state=to_state, **fields))
            return result.rowcount == 1

    def set_fields(self, job_id: str, **fields) -> None:
        with self.session() as s, s.begin():
            s.execute(update(Job).where(Job.id == job_id).values(**fields))
