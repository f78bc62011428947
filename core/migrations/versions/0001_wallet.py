"""The wallet: users, identities, accounts, grants, holds, clawbacks, ledger, redeem codes.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('redeem_codes',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('max_uses', sa.Integer(), nullable=False),
    sa.Column('uses', sa.Integer(), server_default='0', nullable=False),
    sa.Column('expires_at', core.db.UTCDateTime(), nullable=True),
    sa.Column('credit_days', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('credits > 0 AND max_uses > 0', name=op.f('ck_redeem_codes_positive')),
    sa.CheckConstraint('uses >= 0 AND uses <= max_uses', name=op.f('ck_redeem_codes_uses_in_range')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_redeem_codes'))
    )
    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('tier', sa.String(length=32), server_default='free', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users'))
    )
    op.create_table('accounts',
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('available', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('held', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('debt', sa.BigInteger(), server_default='0', nullable=False),
    sa.CheckConstraint('debt >= 0', name=op.f('ck_accounts_debt_non_negative')),
    sa.CheckConstraint('held >= 0', name=op.f('ck_accounts_held_non_negative')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_accounts_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_accounts'))
    )
    op.create_table('clawbacks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('taken', sa.BigInteger(), nullable=False),
    sa.Column('debt', sa.BigInteger(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('credits > 0', name=op.f('ck_clawbacks_credits_positive')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_clawbacks_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clawbacks')),
    sa.UniqueConstraint('key', name=op.f('uq_clawbacks_key'))
    )
    op.create_table('grants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('remaining', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', core.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_grants_amount_positive')),
    sa.CheckConstraint('remaining >= 0 AND remaining <= amount', name=op.f('ck_grants_remaining_in_range')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_grants_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grants')),
    sa.UniqueConstraint('key', name=op.f('uq_grants_key'))
    )
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.create_index('ix_grants_lapsing', ['expires_at'], unique=False, postgresql_where=sa.text('remaining > 0'), sqlite_where=sa.text('remaining > 0'))
        batch_op.create_index('ix_grants_open', ['user_id', 'expires_at'], unique=False, postgresql_where=sa.text('remaining > 0'), sqlite_where=sa.text('remaining > 0'))

    op.create_table('holds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ref', sa.String(length=200), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('spent', sa.BigInteger(), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', core.db.UTCDateTime(), nullable=True),
    sa.Column('finished_at', core.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('active', 'settled', 'released')", name=op.f('ck_holds_status_known')),
    sa.CheckConstraint('credits > 0', name=op.f('ck_holds_credits_positive')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_holds_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holds')),
    sa.UniqueConstraint('ref', name=op.f('uq_holds_ref'))
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index('ix_holds_reapable', ['expires_at'], unique=False, postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))
        batch_op.create_index('ix_holds_user_id', ['user_id'], unique=False)

    op.create_table('identities',
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_identities_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('channel', 'external_id', name=op.f('pk_identities'))
    )
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.create_index('ix_identities_user_id', ['user_id'], unique=False)

    op.create_table('ledger',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('held_delta', sa.BigInteger(), nullable=False),
    sa.Column('debt_delta', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=False),
    sa.Column('held_after', sa.BigInteger(), nullable=False),
    sa.Column('debt_after', sa.BigInteger(), nullable=False),
    sa.Column('ref', sa.String(length=200), nullable=True),
    sa.Column('grant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('hold_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_ledger_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger'))
    )
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_user_id_id', ['user_id', 'id'], unique=False)

    op.create_table('hold_parts',
    sa.Column('hold_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('grant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('credits > 0', name=op.f('ck_hold_parts_credits_positive')),
    sa.ForeignKeyConstraint(['grant_id'], ['grants.id'], name=op.f('fk_hold_parts_grant_id_grants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['hold_id'], ['holds.id'], name=op.f('fk_hold_parts_hold_id_holds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('hold_id', 'grant_id', name=op.f('pk_hold_parts'))
    )
    with op.batch_alter_table('hold_parts', schema=None) as batch_op:
        batch_op.create_index('ix_hold_parts_grant_id', ['grant_id'], unique=False)

    op.create_table('redemptions',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('grant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['code'], ['redeem_codes.code'], name=op.f('fk_redemptions_code_redeem_codes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['grant_id'], ['grants.id'], name=op.f('fk_redemptions_grant_id_grants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_redemptions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('code', 'user_id', name=op.f('pk_redemptions'))
    )


def downgrade() -> None:
    op.drop_table('redemptions')
    with op.batch_alter_table('hold_parts', schema=None) as batch_op:
        batch_op.drop_index('ix_hold_parts_grant_id')

    op.drop_table('hold_parts')
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_user_id_id')

    op.drop_table('ledger')
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.drop_index('ix_identities_user_id')

    op.drop_table('identities')
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('ix_holds_user_id')
        batch_op.drop_index('ix_holds_reapable', postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))

    op.drop_table('holds')
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index('ix_grants_open', postgresql_where=sa.text('remaining > 0'), sqlite_where=sa.text('remaining > 0'))
        batch_op.drop_index('ix_grants_lapsing', postgresql_where=sa.text('remaining > 0'), sqlite_where=sa.text('remaining > 0'))

    op.drop_table('grants')
    op.drop_table('clawbacks')
    op.drop_table('accounts')
    op.drop_table('users')
    op.drop_table('redeem_codes')
