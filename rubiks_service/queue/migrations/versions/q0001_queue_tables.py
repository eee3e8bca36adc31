"""The queue's job table, under the queue's own name.

Releases before migrations created a table named `jobs`, which collides with MLflow 3's own
`jobs` table in a shared database. A `jobs` table that has the queue's columns is the old queue:
it is renamed with its rows. Any other `jobs` table (MLflow's) is left alone.
"""
import sqlalchemy as sa
from alembic import op

revision = "q0001"
down_revision = None
branch_labels = None
depends_on = None

TABLE = "rubiks_queue_jobs"
LEGACY_COLUMNS = {"id", "name", "kind", "spec", "priority", "state", "attempts", "submission_id"}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "jobs" in inspector.get_table_names() and \
            LEGACY_COLUMNS <= {c["name"] for c in inspector.get_columns("jobs")}:
        for index in inspector.get_indexes("jobs"):  # index names carry the table's name
            op.drop_index(index["name"], table_name="jobs")
        op.rename_table("jobs", TABLE)
    else:
        op.create_table(
            TABLE,
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("spec", sa.Text, nullable=False),
            sa.Column("priority", sa.Integer, nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("submission_id", sa.String(80)),
            sa.Column("mlflow_run_id", sa.String(64)),
            sa.Column("error", sa.Text),
            sa.Column("cpus", sa.Float, nullable=False),
            sa.Column("gpus", sa.Float, nullable=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("submitted_at", sa.DateTime),
            sa.Column("started_at", sa.DateTime),
            sa.Column("finished_at", sa.DateTime),
        )
    op.create_index(f"ix_{TABLE}_priority", TABLE, ["priority"])
    op.create_index(f"ix_{TABLE}_state", TABLE, ["state"])


def downgrade() -> None:
    op.drop_table(TABLE)
