"""The outbox's open rows by user, for the dispatcher's order check and recovery sweep.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "state IN ('pending', 'sending')"


def upgrade() -> None:
    op.create_index('ix_outbox_open_by_user', 'outbox', ['user_id', 'id'], unique=False,
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))


def downgrade() -> None:
    op.drop_index('ix_outbox_open_by_user', table_name='outbox',
                  postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
