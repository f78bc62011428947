"""Payments: one row per order, and every provider event seen (deduplication).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('payment_events',
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=40), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('received_at', core.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'event_id', name=op.f('pk_payment_events'))
    )
    op.create_table('payments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('package_id', sa.String(length=64), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('expires_days', sa.Integer(), server_default='0', nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('state', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('checkout_id', sa.String(length=255), nullable=True),
    sa.Column('payment_ref', sa.String(length=255), nullable=True),
    sa.Column('charge_id', sa.String(length=255), nullable=True),
    sa.Column('refunded', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('disputed_at', core.db.UTCDateTime(), nullable=True),
    sa.Column('clawed', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('event_ids', sa.JSON(), nullable=False),
    sa.Column('problem', sa.String(length=500), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', core.db.UTCDateTime(), nullable=False),
    sa.Column('paid_at', core.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'paid', 'refunded', 'disputed')", name=op.f('ck_payments_state_known')),
    sa.CheckConstraint('amount >= 0 AND refunded >= 0', name=op.f('ck_payments_amounts_non_negative')),
    sa.CheckConstraint('clawed >= 0 AND clawed <= credits', name=op.f('ck_payments_clawed_in_range')),
    sa.CheckConstraint('credits > 0', name=op.f('ck_payments_credits_positive')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_payments_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('order_id', name=op.f('uq_payments_order_id')),
    sa.UniqueConstraint('provider', 'charge_id', name=op.f('uq_payments_provider_charge_id')),
    sa.UniqueConstraint('provider', 'checkout_id', name=op.f('uq_payments_provider_checkout_id'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payments_paid_at', ['paid_at'], unique=False)
        batch_op.create_index('ix_payments_payment_ref', ['provider', 'payment_ref'], unique=False)
        batch_op.create_index('ix_payments_user_id_id', ['user_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_user_id_id')
        batch_op.drop_index('ix_payments_payment_ref')
        batch_op.drop_index('ix_payments_paid_at')

    op.drop_table('payments')
    op.drop_table('payment_events')
