"""Editor: projects, assets, segments, jobs, variants, exports, AI operations, spent signed URLs.

Revision ID: editor_0001
Revises: reframe_0001 (chained after the reframe area, which landed first)
"""

import sqlalchemy as sa
from alembic import op

revision = "editor_0001"
down_revision = "reframe_0001"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _project_fk() -> sa.Column:
    return sa.Column("project_id", sa.String(32), sa.ForeignKey("editor_projects.id", ondelete="CASCADE"),
                     nullable=False, index=True)


def upgrade() -> None:
    op.create_table(
        "editor_projects",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key_id", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _when("created_at"), _when("updated_at"),
    )
    op.create_table(
        "editor_assets",
        sa.Column("id", sa.String(32), primary_key=True),
        _project_fk(),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("file_name", sa.String(500), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("fps", sa.Float(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("has_audio", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _when("created_at"),
    )
    op.create_table(
        "editor_segments",
        sa.Column("id", sa.String(32), primary_key=True),
        _project_fk(),
        sa.Column("asset_id", sa.String(32), sa.ForeignKey("editor_assets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("start_ts", sa.Float(), nullable=False),
        sa.Column("end_ts", sa.Float(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("variant_id", sa.String(32), nullable=True),
        sa.Column("parent_id", sa.String(32), nullable=True),
        sa.Column("grade", sa.JSON(), nullable=True),
        sa.Column("order_index", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _when("created_at"),
    )
    op.create_table(
        "editor_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        _project_fk(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        _when("created_at"), _when("finished_at", True),
    )
    op.create_table(
        "editor_variants",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("editor_jobs.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        _project_fk(),
        sa.Column("asset_id", sa.String(32), sa.ForeignKey("editor_assets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("segment_id", sa.String(32), nullable=False),
        sa.Column("start_ts", sa.Float(), nullable=False),
        sa.Column("end_ts", sa.Float(), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("preview_path", sa.Text(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        _when("created_at"),
    )
    op.create_table(
        "editor_exports",
        sa.Column("id", sa.String(32), primary_key=True),
        _project_fk(),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        _when("created_at"), _when("finished_at", True),
    )
    op.create_table(
        "editor_ai_operations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key_id", sa.String(64), nullable=False, index=True),
        sa.Column("project_id", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        _when("started_at"), _when("finished_at", True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
    )
    op.create_table(
        "editor_signed_uses",
        sa.Column("nonce", sa.String(64), primary_key=True),
        _when("used_at"),
    )


def downgrade() -> None:
    for table in ("editor_signed_uses", "editor_ai_operations", "editor_exports", "editor_variants",
                  "editor_jobs", "editor_segments", "editor_assets", "editor_projects"):
        op.drop_table(table)
