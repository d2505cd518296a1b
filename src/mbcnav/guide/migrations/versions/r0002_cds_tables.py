"""CDS Hooks records shared by every server process: explanations behind card links, used JWT ids.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cds_explanations",
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_cds_explanations_expires_at", "cds_explanations", ["expires_at"])
    op.create_table(
        "cds_token_uses",
        sa.Column("use_hash", sa.String(64), primary_key=True),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_cds_token_uses_expires_at", "cds_token_uses", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_cds_token_uses_expires_at", table_name="cds_token_uses")
    op.drop_table("cds_token_uses")
    op.drop_index("ix_cds_explanations_expires_at", table_name="cds_explanations")
    op.drop_table("cds_explanations")
