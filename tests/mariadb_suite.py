"""SQL statements from MariaDB's own regression suite (Debian package ``mariadb-test-data``):
a large corpus for the statement classifier's property tests.

The suite's ``.test`` files are mysqltest scripts: SQL statements ended by the current
delimiter, mixed with mysqltest commands (``--source``, ``let``, ``if (...) {``, ``perl``
blocks). The commands are dropped; what is left is SQL as the suite sends it, some of it with
mysqltest ``$variables`` in it (still text the classifier must survive).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

SUITE = Path("/usr/share/mysql/mysql-test")
INSTALL_HINT = (
    f"{SUITE} is missing: install MariaDB's test suite with "
    "`sudo apt-get install -y mariadb-test-data` (or run `make servers`)"
)
_COMMAND_WORDS = """
let inc dec echo source connect connection disconnect sleep real_sleep error exit die skip
reap save_master_pos sync_with_master sync_slave_with_master wait_for_slave_to_stop
vertical_results horizontal_results system exec remove_file remove_files_wildcard
file_exists copy_file move_file mkdir rmdir force-rmdir chmod list_files cat_file diff_files
change_user shutdown_server start_timer end_timer character_set lowercase_result
result_format ping dirty_close send_quit send_shutdown require result output assert expr
copy_files_wildcard write_line sorted_result partially_sorted_result query_attributes
replace_result replace_column replace_regex replace_numeric_round send_eval
wait_for_slave_param sync_slave_io_with_master eval_result
"""
_COMMANDS = frozenset(_COMMAND_WORDS.split())
_PREFIXES = ("enable_", "disable_")
_SQL_COMMANDS = ("eval", "send", "query", "query_vertical", "query_horizontal")
_BLOCKS = ("perl", "write_file", "append_file")
_CONTROL = re.compile(r"^(if|while)\s*\(|^[{}]")


def _skip_block(lines: Iterator[str], first: str) -> None:
    """Skip a perl/write_file block: up to its terminator (EOF unless named)."""
    words = first.rstrip(";").split()
    end = words[-1] if len(words) > 1 and words[0] != "perl" else "EOF"
    for line in lines:
        if line.strip() == end:
            return


def _statement(chunk: str) -> str | None:
    words = chunk.split(None, 1)
    if not words:
        return None
    first = words[0].lower()
    if first in _COMMANDS or first.startswith(_PREFIXES) or first.startswith("--"):
        return None
    if first in _SQL_COMMANDS:
        return words[1] if len(words) > 1 else None
    return chunk


def statements(text: str) -> Iterator[str]:
    """The SQL statements of one mysqltest script, in order."""
    delimiter = ";"
    buffer: list[str] = []
    lines = iter(text.splitlines())
    for line in lines:
        stripped = line.strip()
        lower = stripped.lower()
        if not buffer:
            if not stripped or stripped.startswith(("#", "--")) or _CONTROL.match(lower):
                if lower.startswith("--delimiter"):
                    delimiter = stripped.split()[1]
                continue
            if lower.startswith(_BLOCKS):
                _skip_block(lines, stripped)
                continue
            if lower.startswith("delimiter "):
                new = stripped[len("delimiter ") :].strip()
                delimiter = new[: -len(delimiter)].strip() if new.endswith(delimiter) else new
                continue
        buffer.append(line)
        if stripped.endswith(delimiter):
            chunk = "\n".join(buffer).strip()[: -len(delimiter)].strip()
            buffer = []
            if (sql := _statement(chunk)) is not None:
                yield sql


def corpus(limit_files: int | None = None) -> list[str]:
    """Every distinct statement of the suite's ``.test`` files (sorted by path)."""
    if not SUITE.is_dir():
        raise FileNotFoundError(INSTALL_HINT)
    seen: dict[str, None] = {}
    for path in sorted(SUITE.rglob("*.test"))[:limit_files]:
        for sql in statements(path.read_text(errors="replace")):
            seen.setdefault(sql)
    return list(seen)
