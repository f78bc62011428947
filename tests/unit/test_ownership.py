"""One owner per table, dialect branches in core only, one read and one write (issue 10).

Every table belongs to the package that defines it (`wallet.tables` → `wallet`, …; the `outbox`
table → `core.outbox`). A module outside the owner may not import a table module or a table
object, nor name another package's table in SQL text; it calls the owner's query functions or
composes the owner's selectables instead. Only `core/` branches on the database dialect
(`is_postgres`, `dialect.name`). Queries run through `core.db.read` / `core.db.write`, not the
names they replaced. Migrations (core/migrations) own the schema and are exempt.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Table

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "core", "generation", "handlers", "payments", "providers", "storage",
            "wallet", "webhooks")
TABLE_MODULES = {"core.outbox": "core.outbox", "generation.tables": "generation",
                 "handlers.tables": "handlers", "payments.tables": "payments",
                 "wallet.tables": "wallet"}
OLD_NAMES = {"read_tx", "write_tx", "run_read", "run_write"}
_SQL_NAME = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO|TABLE)\s+\"?(\w+)", re.IGNORECASE)


def owners() -> dict[str, tuple[str, str]]:
    """Table name -> (module defining it, owner prefix)."""
    found = {}
    for module, owner in TABLE_MODULES.items():
        for value in vars(importlib.import_module(module)).values():
            if isinstance(value, Table):
                found[value.name] = (module, owner)
    return found


def _within(module: str, owner: str) -> bool:
    return module == owner or module.startswith(owner + ".")


@dataclass(frozen=True)
class Offence:
    module: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.what}"


def check_source(module: str, source: str, tables: dict[str, tuple[str, str]]) -> list[Offence]:
    """The rule's offences in one module's source."""
    out: list[Offence] = []
    package = module.rsplit(".", 1)[0] if module.count(".") else module

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = module.split(".")[: -node.level] if module.count(".") >= node.level else []
        if not module.count(".") and node.level == 1:
            base = [package]
        return ".".join(base + ([node.module] if node.module else []))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            origin = resolve(node)
            for alias in node.names:
                full = f"{origin}.{alias.name}"
                for table_module, owner in TABLE_MODULES.items():
                    if _within(module, owner):
                        continue
                    table_names = {n for n, (m, _) in tables.items() if m == table_module}
                    if full == table_module or (origin == table_module and (
                            table_module != "core.outbox" or alias.name in table_names)):
                        out.append(Offence(module, node.lineno,
                                           f"imports {full}, a table of {owner}"))
                if alias.name in OLD_NAMES and origin == "core.db":
                    out.append(Offence(module, node.lineno, f"uses core.db.{alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                holder = TABLE_MODULES.get(alias.name)
                if holder and alias.name != "core.outbox" and not _within(module, holder):
                    out.append(Offence(module, node.lineno,
                                       f"imports {alias.name}, the tables of {holder}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for name in _SQL_NAME.findall(node.value):
                if name in tables and not _within(module, tables[name][1]):
                    out.append(Offence(module, node.lineno,
                                       f"names {tables[name][1]}'s table {name} in SQL"))
        elif not module.startswith("core."):
            if (isinstance(node, ast.Name) and node.id == "is_postgres") or \
                    (isinstance(node, ast.Attribute) and node.attr == "is_postgres"):
                out.append(Offence(module, node.lineno, "branches on the dialect (is_postgres)"))
            if isinstance(node, ast.Attribute) and node.attr == "name" and \
                    isinstance(node.value, ast.Attribute) and node.value.attr == "dialect":
                out.append(Offence(module, node.lineno, "branches on the dialect (dialect.name)"))
    return out


def sources() -> list[tuple[str, Path]]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("core", "migrations"):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out.append((".".join(parts), path))
    return out


def test_every_table_has_one_owner_and_is_queried_only_there() -> None:
    tables = owners()
    assert {"users", "identities", "accounts", "jobs", "outbox", "chats", "payments"} <= \
        set(tables)
    modules = sources()
    assert len(modules) > 50
    offences = [o for module, path in modules
                for o in check_source(module, path.read_text(encoding="utf-8"), tables)]
    assert not offences, "\n".join(map(str, offences))


def test_no_module_uses_the_old_query_names() -> None:
    """Tests and benchmarks too: one read and one write everywhere."""
    found = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in (".venv", "build") or rel == Path("core/db.py") or \
                path == Path(__file__):
            continue
        text = path.read_text(encoding="utf-8")
        found += [f"{rel}: {name}" for name in OLD_NAMES if re.search(rf"\b{name}\b", text)]
    assert not found, found


def test_the_checker_finds_each_kind_of_offence() -> None:
    tables = owners()
    bad = '''
from wallet.tables import users
from core.outbox import outbox, enqueue
from ..tables import chats
import generation.tables
from core.db import read_tx
q = "SELECT * FROM identities JOIN payments ON 1"
if is_postgres(conn) or conn.dialect.name == "sqlite":
    pass
'''
    found = {o.what for o in check_source("handlers.sub.x", bad, tables)}
    assert found == {
        "imports wallet.tables.users, a table of wallet",
        "imports core.outbox.outbox, a table of core.outbox",
        "imports generation.tables, the tables of generation",
        "uses core.db.read_tx",
        "names wallet's table identities in SQL",
        "names payments's table payments in SQL",
        "branches on the dialect (is_postgres)",
        "branches on the dialect (dialect.name)",
    }
    # ... and within the owner the same lines are fine (relative import included).
    assert check_source("wallet._x", "from .tables import users\nq = 'UPDATE users'",
                        tables) == []
    assert check_source("handlers.x", "from .tables import chats", tables) == []
    assert check_source("core.outbox", "q = 'DELETE FROM outbox'", tables) == []
