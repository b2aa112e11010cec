"""Items keyed by their content; batches and the items they were asked for.

``simmate_results`` becomes one row per piece of work, keyed by ``key`` (a hash of workflow,
version, input content and parameters), with execution bookkeeping; ``simmate_batches`` and
``simmate_batch_items`` are new. 0.1.0 rows are kept:

- workflow = flow_name, workflow_version = "legacy", parameters = {}, executions = 1;
- key = sha256 hex of the old task_key: a legacy row never collides with a new key (those hash
  a JSON document), so new work is computed again rather than matched to a legacy row;
- input_name = the task part of ``<flow>/<task>/<input_hash>``, else "legacy";
- input_hash, status, result, flow_run_id, created_at and updated_at as they were;
  every other new column NULL.

Downgrade drops the batch tables and the new-only columns (their content is lost). Legacy rows
get their 0.1.0 task_key back; rows made since get ``<workflow>/<key>`` (unique, and never what
0.1.0 computes, so 0.1.0 recomputes that work); a NULL result becomes {}.

Revision ID: 0002
Revises: 0001
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LEGACY = "legacy"
PAGE = 1000

# Added nullable, filled in, then made NOT NULL (a NOT NULL column cannot be added to a table
# that has rows without a server default, and the frozen schema has none).
REQUIRED = {
    "key": sa.String(64),
    "workflow_version": sa.String(32),
    "input_name": sa.Text(),
    "parameters": sa.JSON(),
    "executions": sa.Integer(),
}
OPTIONAL = {
    "error": sa.Text(),
    "batch_id": sa.String(64),
    "execution_id": sa.String(32),
    "worker": sa.Text(),
    "queued_at": sa.DateTime(timezone=True),
    "started_at": sa.DateTime(timezone=True),
    "finished_at": sa.DateTime(timezone=True),
    "compute_seconds": sa.Float(),
    "progress": sa.JSON(),
    "provenance": sa.JSON(),
}
NEW_INDEXES = {"ix_simmate_results_workflow": "workflow", "ix_simmate_results_status": "status",
               "ix_simmate_results_batch_id": "batch_id"}


def legacy_input_name(flow_name: str, task_key: str, input_hash: str) -> str:
    """The task part of 0.1.0's ``<flow>/<task>/<input_hash>`` key, or "legacy"."""
    prefix, suffix = f"{flow_name}/", f"/{input_hash}"
    if (task_key.startswith(prefix) and task_key.endswith(suffix)
            and len(task_key) > len(prefix) + len(suffix)):
        return task_key[len(prefix):-len(suffix)]
    return LEGACY


def _pages(bind, table, *columns):
    """The rows of ``table`` in pages of PAGE, by id (the table is updated as we go)."""
    last = None
    while True:
        query = sa.select(table.c.id, *columns).order_by(table.c.id).limit(PAGE)
        if last is not None:
            query = query.where(table.c.id > last)
        rows = bind.execute(query).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


def upgrade() -> None:
    op.create_table(
        "simmate_batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("workflow_version", sa.String(32), nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("rerun", sa.Boolean, nullable=False),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "simmate_batch_items",
        sa.Column("batch_id", sa.String(64),
                  sa.ForeignKey("simmate_batches.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("input_name", sa.Text, nullable=False),
        sa.Column("result_key", sa.String(64), nullable=False),
    )
    op.create_index("ix_simmate_batch_items_result_key", "simmate_batch_items", ["result_key"])

    for name, type_ in {**REQUIRED, **OPTIONAL}.items():
        op.add_column("simmate_results", sa.Column(name, type_, nullable=True))

    results = sa.table("simmate_results", sa.column("id", sa.Integer),
                       sa.column("flow_name"), sa.column("task_key"), sa.column("input_hash"),
                       sa.column("key"), sa.column("input_name"), sa.column("workflow_version"),
                       sa.column("parameters", sa.JSON), sa.column("executions"))
    bind = op.get_bind()
    per_row = (sa.update(results).where(results.c.id == sa.bindparam("row_id"))
               .values(key=sa.bindparam("new_key"), input_name=sa.bindparam("new_name")))
    for rows in _pages(bind, results, results.c.flow_name, results.c.task_key,
                       results.c.input_hash):
        bind.execute(per_row, [
            dict(row_id=row.id, new_key=hashlib.sha256(row.task_key.encode()).hexdigest(),
                 new_name=legacy_input_name(row.flow_name, row.task_key, row.input_hash))
            for row in rows])
    bind.execute(sa.update(results).values(workflow_version=LEGACY, parameters={}, executions=1))

    # SQLite: one copy of the table into the new shape (rows and ids kept); PostgreSQL: ALTERs.
    with op.batch_alter_table("simmate_results") as batch:
        batch.drop_index("ix_simmate_results_flow_name")
        batch.alter_column("flow_name", new_column_name="workflow",
                           existing_type=sa.String(200), existing_nullable=False)
        batch.drop_column("task_key")  # and its unique constraint, on both backends
        batch.alter_column("status", type_=sa.String(16), existing_type=sa.String(32),
                           existing_nullable=False)
        batch.alter_column("result", nullable=True, existing_type=sa.JSON)
        for name, type_ in REQUIRED.items():
            batch.alter_column(name, nullable=False, existing_type=type_)
        # PostgreSQL's own name for an unnamed UNIQUE (key), as results.metadata would make it
        batch.create_unique_constraint("simmate_results_key_key", ["key"])
    # after the batch: Alembic's batch cannot index a column it renames in the same batch
    for index, column in NEW_INDEXES.items():
        op.create_index(index, "simmate_results", [column])


def downgrade() -> None:
    op.drop_index("ix_simmate_batch_items_result_key", table_name="simmate_batch_items")
    op.drop_table("simmate_batch_items")
    op.drop_table("simmate_batches")

    op.add_column("simmate_results", sa.Column("task_key", sa.String(300), nullable=True))
    results = sa.table("simmate_results", sa.column("id", sa.Integer), sa.column("workflow"),
                       sa.column("workflow_version"), sa.column("input_name"),
                       sa.column("input_hash"), sa.column("key"), sa.column("task_key"),
                       sa.column("result", sa.JSON))
    bind = op.get_bind()
    per_row = (sa.update(results).where(results.c.id == sa.bindparam("row_id"))
               .values(task_key=sa.bindparam("old_key")))

    def task_key(row) -> str:
        if row.workflow_version == LEGACY and row.input_name != LEGACY:
            return f"{row.workflow}/{row.input_name}/{row.input_hash}"
        return f"{row.workflow}/{row.key}"

    for rows in _pages(bind, results, results.c.workflow, results.c.workflow_version,
                       results.c.input_name, results.c.input_hash, results.c.key):
        bind.execute(per_row, [dict(row_id=row.id, old_key=task_key(row)) for row in rows])
    bind.execute(sa.update(results).where(results.c.result.is_(None)).values(result={}))

    with op.batch_alter_table("simmate_results") as batch:
        for index in NEW_INDEXES:
            batch.drop_index(index)
        for name in {**REQUIRED, **OPTIONAL}:
            batch.drop_column(name)  # "key" takes its unique constraint with it
        batch.alter_column("workflow", new_column_name="flow_name",
                           existing_type=sa.String(200), existing_nullable=False)
        batch.alter_column("status", type_=sa.String(32), existing_type=sa.String(16),
                           existing_nullable=False)
        batch.alter_column("result", nullable=False, existing_type=sa.JSON)
        batch.alter_column("task_key", nullable=False, existing_type=sa.String(300))
        batch.create_unique_constraint("simmate_results_task_key_key", ["task_key"])
    op.create_index("ix_simmate_results_flow_name", "simmate_results", ["flow_name"])
