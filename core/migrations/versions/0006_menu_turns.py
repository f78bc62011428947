"""The numbered menu a user was last shown (`chats.menu`) and the per-user turn lease
(`chat_turns`), for channels without buttons and for ordering across instances.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('chats') as batch:
        batch.add_column(sa.Column('menu', sa.JSON(), nullable=True))
    op.create_table('chat_turns',
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('address', sa.String(length=128), nullable=False),
    sa.Column('holder', sa.String(length=32), nullable=True),
    sa.Column('until', core.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('channel', 'address', name=op.f('pk_chat_turns')),
    )


def downgrade() -> None:
    op.drop_table('chat_turns')
    with op.batch_alter_table('chats') as batch:
        batch.drop_column('menu')
