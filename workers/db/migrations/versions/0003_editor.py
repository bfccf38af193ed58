"""Editor: projects, assets, segments, jobs, variants, exports, AI operations, spent signed URLs.

Revision ID: editor_0001
Revises: reframe_0001 (chained after the reframe area, which landed first)
"""

import sqlalchemy as sa
from alembic import op

from workers.db.migrations.columns import key_id, optional, owner, probed, required, string_id, when

revision = "editor_0001"
down_revision = "reframe_0001"
branch_labels = None
depends_on = None


def _project_fk() -> sa.Column:
    return owner("project_id", "editor_projects.id", index=True)


def _project_table(name: str, *columns: sa.Column, finishes: bool = False) -> None:
    """A table of what a project owns: id and project_id, ``columns``, created_at (and finished_at)."""
    op.create_table(name, string_id(), _project_fk(), *columns, when("created_at"),
                    *([when("finished_at", True)] if finishes else []))


def upgrade() -> None:
    op.create_table(
        "editor_projects",
        string_id(), key_id(index=True),
        *required(name=sa.String(500), description=sa.Text()),
        when("created_at"), when("updated_at"),
    )
    _project_table(
        "editor_assets",
        *required(origin=sa.String(16), status=sa.String(16), file_name=sa.String(500), content_type=sa.String(200),
                  source_url=sa.Text(), path=sa.Text()),
        *optional(size=sa.BigInteger()), *required(received=sa.BigInteger()), *probed(),
        *required(has_audio=sa.Boolean()), *optional(error=sa.Text()),
    )
    _project_table(
        "editor_segments",
        owner("asset_id", "editor_assets.id"),
        *required(start_ts=sa.Float(), end_ts=sa.Float(), source=sa.String(16)),
        *optional(variant_id=sa.String(32), parent_id=sa.String(32), grade=sa.JSON()),
        *required(order_index=sa.Integer(), active=sa.Boolean()),
    )
    _project_table(
        "editor_jobs",
        *required(kind=sa.String(16), status=sa.String(16)), *optional(error=sa.Text()), *required(params=sa.JSON()),
        finishes=True,
    )
    op.create_table(
        "editor_variants",
        string_id(), owner("job_id", "editor_jobs.id", index=True), _project_fk(),
        owner("asset_id", "editor_assets.id"),
        *required(segment_id=sa.String(32), start_ts=sa.Float(), end_ts=sa.Float(), label=sa.String(200),
                  preview_path=sa.Text(), accepted=sa.Boolean()),
        when("created_at"),
    )
    _project_table(
        "editor_exports",
        *required(status=sa.String(16), progress=sa.Float(), format=sa.String(16), path=sa.Text()),
        *optional(error=sa.Text()), *required(details=sa.JSON()),
        finishes=True,
    )
    op.create_table(
        "editor_ai_operations",
        string_id(), key_id(index=True), *optional(project_id=sa.String(32)),
        *required(kind=sa.String(16), provider=sa.String(100), status=sa.String(16)),
        *optional(subject_id=sa.String(32)), *required(detail=sa.Text()),
        when("started_at"), when("finished_at", True), *optional(duration_ms=sa.Float()),
    )
    op.create_table(
        "editor_signed_uses",
        sa.Column("nonce", sa.String(64), primary_key=True),
        when("used_at"),
    )


def downgrade() -> None:
    for table in ("editor_signed_uses", "editor_ai_operations", "editor_exports", "editor_variants",
                  "editor_jobs", "editor_segments", "editor_assets", "editor_projects"):
        op.drop_table(table)
