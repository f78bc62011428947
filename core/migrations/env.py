"""Alembic environment: runs on the connection `core.migrate` hands over."""

from alembic import context

import bot.wechat._inbox_tables
import bot.wechat._tables  # noqa: F401
import core.outbox  # noqa: F401  (each import registers its tables on the shared metadata)
import generation.tables  # noqa: F401
import handlers.tables  # noqa: F401
import memberships.tables  # noqa: F401
import payments.tables  # noqa: F401
import wallet.tables  # noqa: F401
from core.db import metadata

_conn = context.config.attributes.get("connection")
if _conn is None:
    raise RuntimeError("run migrations with `videofly db upgrade`, not the alembic CLI")

context.configure(
    connection=_conn,
    target_metadata=metadata,
    render_as_batch=_conn.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
