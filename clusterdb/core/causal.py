"""Read-your-writes tokens (pure): parse, format, compare, merge.

A token says where a cluster's log stood after a connection's last commit; a node may serve a
read "after" it once it has applied that much. Text form (``TOKEN_PREFIX`` version 1)::

    cdb1:<cluster>:pg:<system identifier>:<LSN X/Y>     cdb1:main:pg:7312...:0/3000148
    cdb1:<cluster>:mariadb:<GTIDs joined by '.'>        cdb1:main:mariadb:0-1-42.1-2-7

The cluster name is percent-encoded (``%``, letters, digits, ``-_.~`` only), the MariaDB GTID
list (the server writes it with ``,``) joined by ``.``, so a token holds no ``;``, ``,``,
whitespace, quote or backslash: it goes into a cookie or an HTTP header as it is. Why the
cluster and PostgreSQL's system identifier: an LSN or a GTID means nothing on another cluster,
and a node would silently compare them.

Order: a PostgreSQL LSN is a 64-bit position (``X/Y`` is its high and low 32 bits, hex); a
MariaDB position is a sequence number per replication domain, and one position covers another
when it is at least as far in every domain the other names (a partial order: MariaDB's own
``MASTER_GTID_WAIT`` rule; the server id in a GTID does not count).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote

from clusterdb.errors import CausalTokenError

__all__ = [
    "TOKEN_PREFIX",
    "Gtid",
    "Kind",
    "Position",
    "Token",
    "covers",
    "format_gtids",
    "format_lsn",
    "format_position",
    "later",
    "merge",
    "parse_gtids",
    "parse_lsn",
    "parse_token",
]

TOKEN_PREFIX = "cdb1"
Kind = Literal["pg", "mariadb"]
_KINDS: tuple[Kind, ...] = ("pg", "mariadb")
_MAX_LSN = (1 << 64) - 1
_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True, order=True)
class Gtid:
    """One MariaDB GTID, ``domain-server-seq``."""

    domain: int
    server: int
    seq: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server}-{self.seq}"


Position = int | tuple[Gtid, ...]
"""A PostgreSQL LSN (int) or a MariaDB GTID position (one GTID per domain, by domain)."""


def parse_lsn(text: str) -> int:
    """``X/Y`` (hex, as ``pg_current_wal_lsn()`` prints it) -> the 64-bit LSN."""
    high, sep, low = text.strip().partition("/")
    if not sep or not _is_hex(high, 8) or not _is_hex(low, 8):
        raise CausalTokenError(f"not a PostgreSQL LSN: {text!r}")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(lsn: int) -> str:
    """The 64-bit ``lsn`` as PostgreSQL prints it (``X/Y``, upper-case hex)."""
    if not 0 <= lsn <= _MAX_LSN:
        raise CausalTokenError(f"LSN out of range: {lsn}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def _is_hex(part: str, most: int) -> bool:
    return 0 < len(part) <= most and all(c in _HEX for c in part)


def parse_gtids(text: str, sep: str = ",") -> tuple[Gtid, ...]:
    """A GTID list as the server prints it (``@@gtid_current_pos``: ``0-1-42,1-2-7``, maybe
    with whitespace; empty: nothing yet) -> one GTID per domain, sorted by domain (the
    highest sequence number kept when a domain repeats)."""
    by_domain: dict[int, Gtid] = {}
    for part in text.split(sep):
        item = part.strip()
        if not item:
            continue
        fields = item.split("-")
        if len(fields) != 3 or not all(f.isdigit() and f.isascii() for f in fields):
            raise CausalTokenError(f"not a MariaDB GTID: {item!r}")
        gtid = Gtid(int(fields[0]), int(fields[1]), int(fields[2]))
        known = by_domain.get(gtid.domain)
        if known is None or known.seq < gtid.seq:
            by_domain[gtid.domain] = gtid
    return tuple(by_domain[d] for d in sorted(by_domain))


def format_gtids(gtids: tuple[Gtid, ...], sep: str = ",") -> str:
    """``gtids`` joined by ``sep`` (``,``: the server's form, for ``MASTER_GTID_WAIT``)."""
    return sep.join(str(g) for g in gtids)


@dataclass(frozen=True, slots=True)
class Token:
    """A parsed token: the cluster it belongs to and the position it names."""

    cluster: str
    kind: Kind
    position: Position
    system_id: str = ""
    """PostgreSQL's ``system_identifier`` (one per initdb, shared by its replicas); "" for
    MariaDB."""

    def __str__(self) -> str:
        head = f"{TOKEN_PREFIX}:{quote(self.cluster, safe='')}:{self.kind}"
        if isinstance(self.position, int):
            return f"{head}:{self.system_id}:{format_lsn(self.position)}"
        return f"{head}:{format_gtids(self.position, '.')}"

    @property
    def server_form(self) -> str:
        """The position as the server writes it: ``X/Y`` or ``0-1-42,1-2-7``."""
        if isinstance(self.position, int):
            return format_lsn(self.position)
        return format_gtids(self.position)

    def check_cluster(self, cluster: str, system_id: str | None = None) -> None:
        """Raise CausalTokenError unless the token belongs to ``cluster`` (and, when given,
        to the PostgreSQL cluster of ``system_id``)."""
        if cluster != self.cluster:
            raise CausalTokenError(
                f"token of cluster {self.cluster!r} used on cluster {cluster!r}: "
                "a log position means nothing on another cluster"
            )
        if system_id and self.system_id and system_id != self.system_id:
            raise CausalTokenError(
                f"token of PostgreSQL system {self.system_id} used on cluster {cluster!r}, "
                f"whose system identifier is {system_id}: the servers were re-initialised "
                "or the token comes from another cluster of that name"
            )


def parse_token(text: str, cluster: str | None = None) -> Token:
    """The token in ``text``; with ``cluster``, also checked to belong to it. Raises
    CausalTokenError naming what is wrong."""
    if not isinstance(text, str):
        raise CausalTokenError(f"a token is a str, not {type(text).__name__}")
    fields = text.split(":")
    if len(fields) < 4 or fields[0] != TOKEN_PREFIX or fields[2] not in _KINDS:
        raise CausalTokenError(f"not a clusterdb token: {text[:80]!r}")
    name = unquote(fields[1], errors="strict")
    if fields[2] == "pg":
        if len(fields) != 5 or not fields[3].isdigit():
            raise CausalTokenError(f"not a PostgreSQL token: {text[:80]!r}")
        token = Token(name, "pg", parse_lsn(fields[4]), fields[3])
    else:
        if len(fields) != 4 or fields[3] != fields[3].strip():
            raise CausalTokenError(f"not a MariaDB token: {text[:80]!r}")
        token = Token(name, "mariadb", parse_gtids(fields[3], "."))
    if cluster is not None:
        token.check_cluster(cluster)
    return token


def format_position(position: Position | None) -> str | None:
    """``position`` as its server prints it (None stays None)."""
    if position is None:
        return None
    return format_lsn(position) if isinstance(position, int) else format_gtids(position)


def covers(position: Position | None, token: Token) -> bool:
    """Whether a node at ``position`` (what it has applied; None: unknown) has applied
    everything ``token`` names. Positions of another kind never cover (False)."""
    if position is None:
        return False
    if isinstance(token.position, int):
        return isinstance(position, int) and position >= token.position
    if isinstance(position, int):
        return False
    have = {g.domain: g.seq for g in position}
    return all(have.get(g.domain, -1) >= g.seq for g in token.position)


def later(a: Position | None, b: Position) -> Position:
    """The later of two applied positions of one node (per domain for MariaDB); ``b`` when
    they are of different kinds or ``a`` is unknown."""
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return parse_gtids(format_gtids(a + b))
    return b


def merge(a: Token, b: Token) -> Token:
    """The least token covering both (for a request that wrote on several connections):
    the later LSN, or per domain the later GTID. Raises CausalTokenError for tokens of
    different clusters."""
    b.check_cluster(a.cluster, a.system_id)
    if a.kind != b.kind:
        raise CausalTokenError(f"tokens of different kinds: {a.kind} and {b.kind}")
    if isinstance(a.position, int) and isinstance(b.position, int):
        return a if a.position >= b.position else b
    assert isinstance(a.position, tuple) and isinstance(b.position, tuple)
    merged = parse_gtids(format_gtids(a.position + b.position))
    return Token(a.cluster, a.kind, merged)
