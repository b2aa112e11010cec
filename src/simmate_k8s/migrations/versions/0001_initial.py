"""The schema of simmate-k8s 0.1.0: one ``simmate_results`` table.

0.1.0 made it with ``metadata.create_all`` and no version table; such a database is stamped
0001 (see simmate_k8s.migrations) instead of running this.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "simmate_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("flow_name", sa.String(200), nullable=False),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("task_key", sa.String(300), nullable=False),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("task_key"),  # unnamed, as 0.1.0's unique=True made it
    )
    op.create_index("ix_simmate_results_flow_name", "simmate_results", ["flow_name"])


def downgrade() -> None:
    op.drop_index("ix_simmate_results_flow_name", table_name="simmate_results")
    op.drop_table("simmate_results")
