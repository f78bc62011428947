"""WeChat: the shared access token row and the per-openid delivery state.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('wechat_tokens',
    sa.Column('app_id', sa.String(length=64), nullable=False),
    sa.Column('access_token', sa.Text(), server_default='', nullable=False),
    sa.Column('expires_at', core.db.UTCDateTime(), nullable=True),
    sa.Column('fetched_at', core.db.UTCDateTime(), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', core.db.UTCDateTime(), nullable=True),
    sa.Column('updated_at', core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('app_id', name=op.f('pk_wechat_tokens'))
    )
    op.create_table('wechat_peers',
    sa.Column('openid', sa.String(length=128), nullable=False),
    sa.Column('last_inbound_at', core.db.UTCDateTime(), nullable=True),
    sa.Column('cs_sent', sa.Integer(), server_default='0', nullable=False),
    sa.Column('held', sa.String(length=16), nullable=True),
    sa.Column('updated_at', core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('openid', name=op.f('pk_wechat_peers'))
    )


def downgrade() -> None:
    op.drop_table('wechat_peers')
    op.drop_table('wechat_tokens')
