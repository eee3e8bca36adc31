"""A job carries what it runs: the validated files it was submitted with (`bundle`, JSON
{file name: text}), and the MLflow model URI of a finished job (`model_uri`)."""
import sqlalchemy as sa
from alembic import op

revision = "q0002"
down_revision = "q0001"
branch_labels = None
depends_on = None

TABLE = "rubiks_queue_jobs"


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("bundle", sa.Text))
        batch.add_column(sa.Column("model_uri", sa.String(500)))


def downgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("model_uri")
        batch.drop_column("bundle")
