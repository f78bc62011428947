"""WeChat: inbound messages counted once across replicas, and messages held for a user.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('wechat_inbound',
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_wechat_inbound'))
    )
    op.create_index('ix_wechat_inbound_expires_at', 'wechat_inbound', ['expires_at'],
                    unique=False)
    op.create_table('wechat_held',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
              nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_held'))
    )
    op.create_index('ix_wechat_held_openid', 'wechat_held', ['openid', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_wechat_held_openid', table_name='wechat_held')
    op.drop_table('wechat_held')
    op.drop_index('ix_wechat_inbound_expires_at', table_name='wechat_inbound')
    op.drop_table('wechat_inbound')
