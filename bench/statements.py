"""Cost of classifying a statement string (clusterdb.core.statement), against tokenizing the
same text with sqlglot and with sqlparse's lexer when they are installed: the measurements
behind docs/design/routing.md.

Usage: ``.venv/bin/python bench/statements.py [--repeat 7]``. Each figure is the best of
``--repeat`` runs of a loop sized to take ~0.2 s, in CPU time of this process
(``time.process_time``): on a shared machine, wall time mostly measures the neighbours.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import time
import timeit
from collections.abc import Callable
from typing import Any

from clusterdb.core.statement import Classifier, Dialect
from clusterdb.core.statement_lex import tokens

COLUMNS = ", ".join(f"c{i}" for i in range(120))
STATEMENTS = {
    "short (31 B)": "SELECT a, b FROM t WHERE id = %s",
    "typical (190 B)": (
        "SELECT t.id, t.a, u.t_id FROM t JOIN u ON u.t_id = t.id "
        "WHERE t.b IN ('a', 'b', 'c') AND t.a > %(low)s ORDER BY t.id LIMIT 50 "
        "/* controller='users',route='/x' */"
    ),
    "long (2 KB)": (
        f"SELECT {COLUMNS} FROM t WHERE id IN ({', '.join(str(i) for i in range(200))}) "
        "AND b <> 'it''s' ORDER BY c1"
    ),
    "bulk INSERT (55 KB)": "INSERT INTO t VALUES "
    + ",".join(f"('+{i} BRETT',{i},{i % 7})" for i in range(2500)),
}


def _per_call(fn: Callable[[], object], repeat: int) -> float:
    """Best CPU seconds per call of ``fn``."""
    timer = timeit.Timer(fn, timer=time.process_time)
    number, _ = timer.autorange()
    number = max(1, number * 2)
    return min(timer.repeat(repeat, number)) / number


def _optional(module: str) -> Any | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _contenders(dialect: Dialect) -> dict[str, Callable[[str], object]]:
    cached = Classifier(dialect)
    uncached = Classifier(dialect, cache_size=0)
    backslash = dialect == "mysql"
    out: dict[str, Callable[[str], object]] = {
        "classify, cached": cached.classify,
        "classify, uncached": uncached.classify,
        "clusterdb lexer only": lambda sql: tokens(sql, dialect, backslash),
    }
    sqlglot = _optional("sqlglot")
    if sqlglot is not None:
        glot = sqlglot.Dialect.get_or_raise("postgres" if dialect == "postgresql" else "mysql")
        core = _optional("sqlglot.tokenizer_core")
        compiled = core is not None and not str(core.__file__).endswith(".py")
        name = f"sqlglot {sqlglot.__version__} tokenize ({'mypyc' if compiled else 'Python'})"
        out[name] = glot.tokenize
    sqlparse = _optional("sqlparse.lexer")
    if sqlparse is not None:
        lexer = sqlparse.Lexer.get_default_instance()
        out["sqlparse lexer"] = lambda sql: list(lexer.get_tokens(sql))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print("| dialect | contender | " + " | ".join(STATEMENTS) + " |")
    print("|---|---|" + "---:|" * len(STATEMENTS))
    for dialect in ("postgresql", "mysql"):
        for name, fn in _contenders(dialect).items():
            cells = []
            for sql in STATEMENTS.values():
                fn(sql)
                seconds = _per_call(functools.partial(fn, sql), args.repeat)
                cells.append(f"{seconds * 1e6:,.1f} us")
            print(f"| {dialect} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
