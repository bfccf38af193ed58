"""Reframe pipeline (API v2): videos, steps, outputs index, charges.

Revision ID: reframe_0001
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from workers.db.migrations.columns import (
    key_id,
    optional,
    owner,
    probed,
    required,
    serial_id,
    string_id,
    when,
)

revision = "reframe_0001"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reframe_videos",
        string_id(), key_id(index=True),
        *required(source_url=sa.Text()), *optional(media_path=sa.Text()),
        sa.Column("content_hash", sa.String(64), nullable=True, index=True),
        *optional(size_bytes=sa.BigInteger()), *probed(),
        *optional(total_frames=sa.Integer(), has_audio=sa.Boolean()),
        when("created_at"),
    )
    op.create_table(
        "reframe_steps",
        serial_id(), owner("video_id", "reframe_videos.id", index=True),
        *required(step=sa.String(40), params_key=sa.Text(), status=sa.String(16), progress=sa.Float()),
        *optional(error=sa.Text(), result_path=sa.Text()),
        *required(requested=sa.Boolean()),
        when("created_at"), when("updated_at"),
    )
    op.create_table(
        "reframe_outputs",
        serial_id(), owner("video_id", "reframe_videos.id"),
        *required(suffix=sa.String(40), path=sa.Text()),
        *optional(step_id=sa.Integer(), meta=sa.JSON()),
        when("updated_at"),
        sa.UniqueConstraint("video_id", "suffix", name="uq_reframe_outputs_video_suffix"),
    )
    op.create_table(
        "reframe_charges",
        serial_id(), key_id(),
        *required(video_id=sa.String(32), credits=sa.Integer(), seconds=sa.Float(), metered=sa.Boolean()),
        when("created_at"),
        sa.UniqueConstraint("key_id", "video_id", name="uq_reframe_charges_key_video"),
    )


def downgrade() -> None:
    op.drop_table("reframe_charges")
    op.drop_table("reframe_outputs")
    op.drop_table("reframe_steps")
    op.drop_table("reframe_videos")
