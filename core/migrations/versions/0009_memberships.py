"""Memberships: the current membership per user, its paid periods, its audit; redeem codes
that carry membership days.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "state != 'ended'"


def upgrade() -> None:
    op.create_table('memberships',
    sa.Column('user_id', core.db.Id, nullable=False),
    sa.Column('plan_id', sa.String(length=64), nullable=True),
    sa.Column('tier', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('subscription_id', sa.String(length=255), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('period_start', core.db.UTCDateTime(), nullable=False),
    sa.Column('period_end', core.db.UTCDateTime(), nullable=False),
    sa.Column('ends_at', core.db.UTCDateTime(), nullable=False),
    sa.Column('next_plan_id', sa.String(length=64), nullable=True),
    sa.Column('reminded_for', core.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', core.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("state IN ('active', 'canceling', 'ended')",
                       name=op.f('ck_memberships_state_known')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                            name=op.f('fk_memberships_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_memberships'))
    )
    op.create_index('ix_memberships_due', 'memberships', ['ends_at'], unique=False,
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
    op.create_index('ix_memberships_subscription', 'memberships',
                    ['source', 'subscription_id'], unique=False)
    op.create_table('membership_periods',
    sa.Column('id', core.db.Id, autoincrement=True, nullable=False),
    sa.Column('period_key', sa.String(length=200), nullable=False),
    sa.Column('user_id', core.db.Id, nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('subscription_id', sa.String(length=255), nullable=False),
    sa.Column('plan_id', sa.String(length=64), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('starts_at', core.db.UTCDateTime(), nullable=False),
    sa.Column('ends_at', core.db.UTCDateTime(), nullable=False),
    sa.Column('payment_ref', sa.String(length=255), nullable=True),
    sa.Column('charge_ref', sa.String(length=255), nullable=True),
    sa.Column('state', sa.String(length=16), server_default='paid', nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("state IN ('paid', 'refunded')",
                       name=op.f('ck_membership_periods_state_known')),
    sa.CheckConstraint('credits >= 0', name=op.f('ck_membership_periods_credits_non_negative')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                            name=op.f('fk_membership_periods_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_membership_periods')),
    sa.UniqueConstraint('period_key', name=op.f('uq_membership_periods_period_key'))
    )
    op.create_index('ix_membership_periods_user', 'membership_periods',
                    ['user_id', 'starts_at'], unique=False)
    op.create_index('ix_membership_periods_payment', 'membership_periods',
                    ['source', 'payment_ref'], unique=False)
    op.create_index('ix_membership_periods_charge', 'membership_periods',
                    ['source', 'charge_ref'], unique=False)
    op.create_table('membership_events',
    sa.Column('id', core.db.Id, autoincrement=True, nullable=False),
    sa.Column('user_id', core.db.Id, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('from_tier', sa.String(length=32), nullable=True),
    sa.Column('to_tier', sa.String(length=32), nullable=True),
    sa.Column('plan_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                            name=op.f('fk_membership_events_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_membership_events'))
    )
    op.create_index('ix_membership_events_user', 'membership_events', ['user_id', 'id'],
                    unique=False)
    with op.batch_alter_table('redeem_codes') as batch:
        batch.add_column(sa.Column('membership_tier', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('membership_days', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('redeem_codes') as batch:
        batch.drop_column('membership_days')
        batch.drop_column('membership_tier')
    op.drop_index('ix_membership_events_user', table_name='membership_events')
    op.drop_table('membership_events')
    op.drop_index('ix_membership_periods_charge', table_name='membership_periods')
    op.drop_index('ix_membership_periods_payment', table_name='membership_periods')
    op.drop_index('ix_membership_periods_user', table_name='membership_periods')
    op.drop_table('membership_periods')
    op.drop_index('ix_memberships_subscription', table_name='memberships')
    op.drop_index('ix_memberships_due', table_name='memberships',
                  postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
    op.drop_table('memberships')
