"""The queue owns its schema: its tables carry their own prefix and Alembic revision table, a
database written by the release before migrations upgrades with its jobs intact, MLflow's own
`jobs` table is never touched, and a database of a newer schema is refused, not modified."""
import datetime as dt
import json
import subprocess
import sys

import pytest
from sqlalchemy import DateTime, Float, Integer, String, Text, create_engine, inspect, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from rubiks_service.queue.schema import JOBS_TABLE, VERSION_TABLE, head_revision
from rubiks_service.queue.store import QUEUED, SUCCEEDED, JobStore, QueueUnavailable


class _OldBase(DeclarativeBase):
    pass


class OldJob(_OldBase):
    """The job table exactly as the release before migrations declared it (create_all)."""
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    spec: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer, index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    submission_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cpus: Mapped[float] = mapped_column(Float, default=0.0)
    gpus: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


SPEC = json.dumps({"name": "old", "kind": "train", "config": "/nowhere/train.yaml", "set": [], "priority": 0,
                   "resources": {"cpus": 0.0, "gpus": 0.0}, "max_retries": 2})


def _old_database(url: str) -> list[dict]:
    engine = create_engine(url)
    _OldBase.metadata.create_all(engine)
    now = dt.datetime(2026, 11, 30, 12, 0, 0)
    rows = [dict(id="rubiks-train-aaaaaaaaaaaa", name="old", kind="train", spec=SPEC, priority=3, state=QUEUED,
                 attempts=0, cpus=0.0, gpus=0.0, created_at=now),
            dict(id="rubiks-train-bbbbbbbbbbbb", name="done", kind="train", spec=SPEC, priority=0, state=SUCCEEDED,
                 attempts=1, submission_id="rubiks-train-bbbbbbbbbbbb", mlflow_run_id="abc123", cpus=1.0, gpus=0.0,
                 created_at=now, submitted_at=now, finished_at=now)]
    with Session(engine) as s, s.begin():
        s.add_all([OldJob(**r) for r in rows])
    engine.dispose()
    return rows


def test_a_database_of_the_previous_release_upgrades_with_its_jobs(tmp_path):
    url = "sqlite:///" + str(tmp_path / "queue.db")
    rows = _old_database(url)
    store = JobStore(url)
    tables = set(inspect(store.engine).get_table_names())
    assert JOBS_TABLE in tables and VERSION_TABLE in tables and "jobs" not in tables
    jobs = {j.id: j for j in store.list()}
    assert set(jobs) == {r["id"] for r in rows}
    for r in rows:
        job = jobs[r["id"]]
        assert (job.name, job.state, job.priority, job.attempts, job.mlflow_run_id, job.created_at) == \
            (r["name"], r["state"], r["priority"], r["attempts"], r.get("mlflow_run_id"), r["created_at"])
        assert job.job_spec.config == "/nowhere/train.yaml" and job.job_bundle is None and job.model_uri is None
    assert [j.id for j in store.next_queued(5)] == ["rubiks-train-aaaaaaaaaaaa"]  # indexes rebuilt, queue works
    with store.engine.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == head_revision()


def test_mlflow_tables_are_left_alone(tmp_path):
    """A shared database where MLflow created its `jobs` (other columns) and `alembic_version`."""
    url = "sqlite:///" + str(tmp_path / "shared.db")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE jobs (id VARCHAR(36) PRIMARY KEY, creation_time BIGINT, function_fullname TEXT)"))
        conn.execute(text("INSERT INTO jobs VALUES ('m1', 1, 'mlflow.fn')"))
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('mlflow-rev')"))
    store = JobStore(url)
    assert store.list() == []
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT function_fullname FROM jobs")).scalar() == "mlflow.fn"
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "mlflow-rev"


def test_a_newer_schema_is_refused_untouched(tmp_path):
    url = "sqlite:///" + str(tmp_path / "queue.db")
    JobStore(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'q9999'"))
    with pytest.raises(QueueUnavailable, match="q9999.*upgrade rubiks-service"):
        JobStore(url)
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == "q9999"
    done = subprocess.run([sys.executable, "-m", "rubiks_service.cli", "jobs", "list", "--queue-url", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "q9999" in done.stderr


def test_migrate_command_reports_the_revision(tmp_path):
    url = "sqlite:///" + str(tmp_path / "new.db")
    done = subprocess.run([sys.executable, "-m", "rubiks_service.cli", "jobs", "migrate", "--queue-url", url, "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["revision"] == head_revision()


@pytest.mark.parametrize("argv, needle", [
    (["jobs", "list", "--queue-url", "postgresql+psycopg://rubiks:pw@127.0.0.1:9/rubiks"], "cannot reach the queue database"),
    (["jobs", "list", "--queue-url", "nosuchdb://x"], "not usable"),
    (["serve", "--address", "http://127.0.0.1:9", "--queue-url", "sqlite:///{tmp}/q.db"], "cannot reach the Ray Jobs API"),
])
def test_unreachable_services_are_one_line_and_exit_2(tmp_path, argv, needle):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    done = subprocess.run([sys.executable, "-m", "rubiks_service.cli", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert needle in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "pw@" not in done.stderr  # the password is not printed
