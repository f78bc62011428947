"""The wallet's invariants as SQL, each query returning the rows that break one.

Run in one read transaction (a single snapshot), so a busy database audits consistently. The
queries are plain SQL that SQLite (≥ 3.28, for window clauses) and PostgreSQL both run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ._types import Violation

# (rule, SQL with a `{uf}` user filter on alias `x` where it is per user, detail formatter)
_Rule = tuple[str, str, Callable[[Any], str]]

_RULES: list[_Rule] = [
    ("available = sum of grant remainders - debt", """
        SELECT x.user_id, x.available, x.debt, COALESCE(g.rem, 0) AS rem
        FROM accounts x LEFT JOIN (
            SELECT user_id, SUM(remaining) AS rem FROM grants GROUP BY user_id
        ) g ON g.user_id = x.user_id
        WHERE x.available <> COALESCE(g.rem, 0) - x.debt {uf}""",
     lambda r: f"available {r.available}, remainders {r.rem}, debt {r.debt}"),
    ("held = sum of active holds", """
        SELECT x.user_id, x.held, COALESCE(h.total, 0) AS total
        FROM accounts x LEFT JOIN (
            SELECT user_id, SUM(credits) AS total FROM holds WHERE status = 'active'
            GROUP BY user_id
        ) h ON h.user_id = x.user_id
        WHERE x.held <> COALESCE(h.total, 0) {uf}""",
     lambda r: f"held {r.held}, active holds {r.total}"),
    ("counters not negative", """
        SELECT x.user_id, x.held, x.debt FROM accounts x
        WHERE (x.held < 0 OR x.debt < 0) {uf}""",
     lambda r: f"held {r.held}, debt {r.debt}"),
    ("debt is paid before credits are kept", """
        SELECT x.user_id, x.debt, SUM(g.remaining) AS rem
        FROM accounts x JOIN grants g ON g.user_id = x.user_id
        WHERE x.debt > 0 {uf}
        GROUP BY x.user_id, x.debt HAVING SUM(g.remaining) > 0""",
     lambda r: f"debt {r.debt} while grants keep {r.rem}"),
    ("grant remainder within 0..amount", """
        SELECT x.user_id, x.id, x.amount, x.remaining, COALESCE(p.held, 0) AS held
        FROM grants x LEFT JOIN (
            SELECT hp.grant_id, SUM(hp.credits) AS held FROM hold_parts hp
            JOIN holds h ON h.id = hp.hold_id WHERE h.status = 'active' GROUP BY hp.grant_id
        ) p ON p.grant_id = x.id
        WHERE (x.remaining < 0 OR x.remaining + COALESCE(p.held, 0) > x.amount) {uf}""",
     lambda r: f"grant {r.id}: amount {r.amount}, remaining {r.remaining}, held {r.held}"),
    ("a hold is the sum of its parts", """
        SELECT x.user_id, x.id, x.credits, COALESCE(SUM(p.credits), 0) AS parts
        FROM holds x LEFT JOIN hold_parts p ON p.hold_id = x.id
        WHERE 1 = 1 {uf}
        GROUP BY x.id, x.user_id, x.credits HAVING x.credits <> COALESCE(SUM(p.credits), 0)""",
     lambda r: f"hold {r.id}: credits {r.credits}, parts {r.parts}"),
    ("settled spends at most what it held", """
        SELECT x.user_id, x.id, x.status, x.credits, x.spent FROM holds x
        WHERE ((x.status = 'settled' AND (x.spent IS NULL OR x.spent < 0
                                          OR x.spent > x.credits))
            OR (x.status = 'released' AND COALESCE(x.spent, -1) <> 0)
            OR (x.status = 'active' AND x.spent IS NOT NULL)) {uf}""",
     lambda r: f"hold {r.id} {r.status}: credits {r.credits}, spent {r.spent}"),
    ("ledger balance-after is the running sum", """
        SELECT * FROM (
            SELECT x.user_id, x.id, x.balance_after, x.held_after, x.debt_after,
                   SUM(x.amount) OVER w AS run_a, SUM(x.held_delta) OVER w AS run_h,
                   SUM(x.debt_delta) OVER w AS run_d
            FROM ledger x WHERE 1 = 1 {uf}
            WINDOW w AS (PARTITION BY x.user_id ORDER BY x.id
                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
        ) t WHERE balance_after <> run_a OR held_after <> run_h OR debt_after <> run_d""",
     lambda r: (f"entry {r.id}: after {r.balance_after}/{r.held_after}/{r.debt_after}, "
                f"running sums {r.run_a}/{r.run_h}/{r.run_d}")),
    ("ledger ends at the account's counters", """
        SELECT x.user_id, x.available, x.held, x.debt, l.balance_after, l.held_after,
               l.debt_after
        FROM accounts x LEFT JOIN ledger l ON l.id = (
            SELECT MAX(id) FROM ledger WHERE user_id = x.user_id)
        WHERE (COALESCE(l.balance_after, 0) <> x.available
            OR COALESCE(l.held_after, 0) <> x.held
            OR COALESCE(l.debt_after, 0) <> x.debt) {uf}""",
     lambda r: (f"account {r.available}/{r.held}/{r.debt}, last entry "
                f"{r.balance_after}/{r.held_after}/{r.debt_after}")),
    ("redeem code uses match redemptions", """
        SELECT NULL AS user_id, c.code, c.uses, c.max_uses, COUNT(x.user_id) AS n
        FROM redeem_codes c LEFT JOIN redemptions x ON x.code = c.code
        GROUP BY c.code, c.uses, c.max_uses
        HAVING c.uses <> COUNT(x.user_id) OR c.uses > c.max_uses""",
     lambda r: f"code {r.code}: uses {r.uses} of {r.max_uses}, redemptions {r.n}"),
]


async def audit(conn: AsyncConnection, user_id: int | None = None) -> list[Violation]:
    found: list[Violation] = []
    params = {} if user_id is None else {"uid": user_id}
    uf = "" if user_id is None else "AND x.user_id = :uid"
    for rule, sql, detail in _RULES:
        if user_id is not None and "{uf}" not in sql:
            continue  # a rule over shared rows (codes) says nothing about one user
        for row in (await conn.execute(text(sql.format(uf=uf)), params)).all():
            found.append(Violation(rule, row.user_id, detail(row)))
    return found
