"""Jobs: how many polls in a row the provider answered "no such task".

A restart can lose a task the provider kept only in memory (the demo's render in progress):
a few such answers in a row fail the job and give its credits back, instead of holding them
until the deadline.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('missing_polls', sa.Integer(), nullable=False,
                                    server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('missing_polls')
